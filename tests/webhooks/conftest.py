from tests.api.conftest import client  # noqa: F401 (the API in the tests' process)
