"""Campaigns: a script with a {name} placeholder, a caller ID and a maximum call length."""

import hashlib

import psycopg.errors
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.caller_ids import service as caller_ids
from shared.campaigns import repository
from shared.campaigns.schemas import CampaignCreate, CampaignUpdate
from shared.models import Campaign, Script


class CampaignNotFound(LookupError):
    pass


class CampaignNameTaken(ValueError):
    pass


class CampaignInUse(ValueError):
    """A campaign with calls keeps them attached: their history names it."""


def script_version(session: Session, account_id: str, text: str) -> str:
    """The id of this text as an unchanging script of the account, stored the first time a
    call is accepted with it."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    found = repository.script_id(session, account_id, digest)
    if found is not None:
        return found
    script = Script(account_id=account_id, digest=digest, text=text)
    try:
        with session.begin_nested():
            session.add(script)
    except IntegrityError:
        # Stored by another request at the same moment, and committed: the insert waited.
        found = repository.script_id(session, account_id, digest)
        assert found is not None
        return found
    return script.id


def _is_name_taken(exc: IntegrityError) -> bool:
    # The campaigns' only unique key besides the random id is (account, name).
    return isinstance(exc.orig, psycopg.errors.UniqueViolation)


def get_by_name(
    session: Session, account_id: str, name: str, *, for_new_calls: bool = False
) -> Campaign:
    campaign = repository.get_by_name(session, account_id, name, for_new_calls=for_new_calls)
    if campaign is None:
        raise CampaignNotFound(name)
    return campaign


def get(session: Session, account_id: str, campaign_id: str) -> Campaign:
    campaign = repository.get(session, account_id, campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


def create(session: Session, account_id: str, data: CampaignCreate) -> Campaign:
    """Raises CampaignNameTaken, also when the name is being taken by another request at the
    same moment (its insert waits for that one's, and is refused once it commits), and
    InvalidCallerId or CallerIdNotAllowed for the caller ID."""
    if repository.get_by_name(session, account_id, data.name) is not None:
        raise CampaignNameTaken(data.name)
    campaign = Campaign(
        account_id=account_id,
        name=data.name,
        script=data.script,
        caller_id=caller_ids.choose(session, account_id, data.callerId),
        max_call_minutes=data.maxCallMinutes,
        max_concurrent_calls=data.maxConcurrentCalls,
        calling_hours=data.callingHours.model_dump() if data.callingHours else None,
        default_timezone=data.defaultTimezone,
        opt_out_digit=data.optOutDigit,
    )
    try:
        with session.begin_nested():
            session.add(campaign)
    except IntegrityError as exc:
        if _is_name_taken(exc):
            raise CampaignNameTaken(data.name) from None
        raise
    return campaign


def update(session: Session, campaign: Campaign, data: CampaignUpdate) -> Campaign:
    if data.name is not None and data.name != campaign.name:
        if repository.get_by_name(session, campaign.account_id, data.name) is not None:
            raise CampaignNameTaken(data.name)
        try:
            with session.begin_nested():
                campaign.name = data.name
        except IntegrityError as exc:
            if _is_name_taken(exc):
                raise CampaignNameTaken(data.name) from None
            raise
    if data.script is not None:
        campaign.script = data.script
    if data.callerId is not None:
        campaign.caller_id = caller_ids.choose(session, campaign.account_id, data.callerId)
    if data.maxCallMinutes is not None:
        campaign.max_call_minutes = data.maxCallMinutes
    if data.maxConcurrentCalls is not None:
        campaign.max_concurrent_calls = data.maxConcurrentCalls
    # A change of hours applies to the campaign's calls not yet placed as well: each is looked
    # at again as it is claimed and before it is dialed.
    if data.callingHours is not None:
        campaign.calling_hours = data.callingHours.model_dump()
    if data.defaultTimezone is not None:
        campaign.default_timezone = data.defaultTimezone
    if data.optOutDigit is not None:
        campaign.opt_out_digit = data.optOutDigit or None
    session.flush()
    return campaign


def upsert_script(session: Session, account_id: str, name: str, script: str) -> Campaign:
    """make_toingg_details: the named campaign with this script, made if it does not exist
    (or updated, when another request made it at the same moment)."""
    campaign = repository.get_by_name(session, account_id, name)
    if campaign is None:
        try:
            return create(session, account_id, CampaignCreate(name=name, script=script))
        except CampaignNameTaken:
            # Committed by the other request by now: its insert is what this one waited for.
            campaign = get_by_name(session, account_id, name)
    if campaign.script != script:
        campaign.script = script
        session.flush()
    return campaign


def delete(session: Session, campaign: Campaign) -> None:
    # Locked first: calls being accepted hold the campaign (see repository.get_by_name), and
    # once they commit the check below sees them.
    if not repository.lock(session, campaign.id):
        raise CampaignNotFound(campaign.id)  # deleted by another request meanwhile
    if repository.has_calls(session, campaign.id):
        raise CampaignInUse(campaign.name)
    session.delete(campaign)
    session.flush()
