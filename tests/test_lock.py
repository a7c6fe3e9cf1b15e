"""constraints.txt is what `make install` and the Dockerfile install from: every requirement of
pyproject.toml must have a pin that satisfies it, and every package they pull in a pin of its
own, so each machine and the image run the versions the tests ran. `make lock` writes it anew."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parents[1]
FIX = "pin it in constraints.txt, or run `make lock`"


def pins() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator and version, f"not a pin: {line!r}"
        found[canonicalize_name(name)] = Version(version)
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        listed += extra
    return [Requirement(each) for each in listed]


def applies(requirement: Requirement, extras: set[str]) -> bool:
    return requirement.marker is None or any(
        requirement.marker.evaluate({"extra": extra}) for extra in extras | {""}
    )


def pulled_in() -> set[str]:
    """Every distribution the requirements bring in here, through the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [req for req in requirements() if applies(req, set())]
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(requirement.name).requires or []
        except metadata.PackageNotFoundError:
            continue
        todo += [
            child for child in map(Requirement, requires) if applies(child, requirement.extras)
        ]
    return {name for name, _ in seen}


class TestLock:
    def test_every_requirement_has_a_pin_that_satisfies_it(self) -> None:
        pinned = pins()
        for requirement in requirements():
            name = canonicalize_name(requirement.name)
            assert name in pinned, f"{requirement} has no pin: {FIX}"
            assert requirement.specifier.contains(pinned[name], prereleases=True), (
                f"{requirement} is not satisfied by the pin {name}=={pinned[name]}: {FIX}"
            )

    def test_every_package_they_pull_in_is_pinned_at_the_installed_version(self) -> None:
        pinned = pins()
        for name in sorted(pulled_in()):
            assert name in pinned, f"{name} is installed for toingg but not pinned: {FIX}"
            installed = Version(metadata.version(name))
            assert installed == pinned[name], (
                f"{name} {installed} is installed, {pinned[name]} pinned: run `make install`"
            )

    def test_make_install_and_the_image_install_from_it(self) -> None:
        makefile = (ROOT / "Makefile").read_text()
        assert "$(INSTALLED): pyproject.toml $(CONSTRAINTS)" in makefile
        assert "pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'" in makefile
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert "constraints.txt" in dockerfile.split("COPY", 1)[1].splitlines()[0]
        assert "pip install --no-cache-dir -c constraints.txt ." in dockerfile
