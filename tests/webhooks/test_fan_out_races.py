"""Fan-out against endpoints changed at the same moment, on PostgreSQL: a status change is never
failed or held up by an endpoint's change, and an endpoint deleted meanwhile is owed nothing."""

from sqlalchemy import func, select

from shared.db import session_scope
from shared.events import outbox
from shared.models import WebhookDelivery, WebhookEndpoint, new_id
from shared.webhooks import endpoints
from shared.webhooks.schemas import EndpointCreate, EndpointUpdate
from tests import factories
from tests.concurrency import Racer


def endpoint_of(account_id: str) -> str:
    with session_scope() as session:
        return endpoints.create(
            session, account_id, EndpointCreate(url="http://127.0.0.1:9/hooks")
        ).id


def append(session, account_id: str) -> str:  # type: ignore[no-untyped-def]
    call_id = new_id()
    return outbox.append(session, account_id, "call.queued", "call", call_id, {"id": call_id}).id


def owed(endpoint_id: str) -> int:
    with session_scope() as session:
        return (
            session.scalar(select(func.count()).where(WebhookDelivery.endpoint_id == endpoint_id))
            or 0
        )


class TestFanOutRaces:
    def test_status_changes_of_one_account_at_once_do_not_wait_for_each_other(self) -> None:
        account_id, _ = factories.account()
        endpoint_id = endpoint_of(account_id)
        with session_scope() as held:
            append(held, account_id)  # its transaction open, its endpoints read
            other = Racer(lambda session: append(session, account_id))
            assert not other.wait_until_blocked_or_done()
            other.join()
        assert owed(endpoint_id) == 2

    def test_a_change_of_the_endpoint_waits_for_no_status_change(self) -> None:
        account_id, _ = factories.account()
        endpoint_id = endpoint_of(account_id)

        def describe(session) -> None:  # type: ignore[no-untyped-def]
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            endpoints.update(session, endpoint, EndpointUpdate(description="changed"))

        with session_scope() as held:
            append(held, account_id)
            change = Racer(describe)
            assert not change.wait_until_blocked_or_done()
            change.join()
        assert owed(endpoint_id) == 1

    def test_no_status_change_waits_for_an_endpoint_held_for_its_change(self) -> None:
        # The API holds the endpoint it changes (PATCH, rotate-secret) until its commit, and a
        # PATCH resolves the new URL meanwhile: held FOR UPDATE, every status change of the
        # account waited that long, and the dispatcher's claims for it timed out.
        account_id, _ = factories.account()
        endpoint_id = endpoint_of(account_id)
        with session_scope() as held:
            endpoint = endpoints.get(held, account_id, endpoint_id, for_update=True)
            endpoints.rotate_secret(held, endpoint)
            endpoints.update(held, endpoint, EndpointUpdate(url="http://127.0.0.1:10/hooks"))
            change = Racer(lambda session: append(session, account_id))
            assert not change.wait_until_blocked_or_done()
            change.join()
        assert owed(endpoint_id) == 1

    def test_no_status_change_waits_while_an_endpoints_deliveries_are_deleted(self) -> None:
        # Deleted by the endpoint's cascade, an endpoint's deliveries went while its row was
        # held FOR UPDATE: 200,000 of them took 5 s, every status change of the account waiting
        # all along. One of them held (a sender recording it) stands for that time here.
        account_id, _ = factories.account()
        endpoint_id = endpoint_of(account_id)
        append_committed = Racer(lambda session: append(session, account_id))
        append_committed.join()
        with session_scope() as sender:
            sender.execute(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .with_for_update()
            ).all()

            def delete(session) -> None:  # type: ignore[no-untyped-def]
                endpoints.delete(
                    session, endpoints.get(session, account_id, endpoint_id, for_update=True)
                )

            deleting = Racer(delete)
            deleting.wait_until_blocked()
            change = Racer(lambda session: append(session, account_id))
            assert not change.wait_until_blocked_or_done()
            change.join()
        deleting.join()
        assert owed(endpoint_id) == 0
        with session_scope() as session:
            assert session.get(WebhookEndpoint, endpoint_id) is None

    def test_an_endpoint_deleted_during_a_status_change_waits_for_it(self) -> None:
        account_id, _ = factories.account()
        endpoint_id = endpoint_of(account_id)

        def delete(session) -> None:  # type: ignore[no-untyped-def]
            endpoints.delete(session, session.get(WebhookEndpoint, endpoint_id))

        with session_scope() as held:
            append(held, account_id)
            deleting = Racer(delete)
            deleting.wait_until_blocked()
        deleting.join()  # the status change committed; its delivery went with the endpoint
        assert owed(endpoint_id) == 0

    def test_a_status_change_during_an_endpoints_delete_owes_it_nothing(self) -> None:
        account_id, _ = factories.account()
        endpoint_id = endpoint_of(account_id)
        with session_scope() as held:
            endpoints.delete(held, held.get(WebhookEndpoint, endpoint_id))
            change = Racer(lambda session: append(session, account_id))
            change.wait_until_blocked()
        change.join()  # committed, not failed on the foreign key
        assert owed(endpoint_id) == 0
