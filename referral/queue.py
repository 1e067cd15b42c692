"""Reading referrals: a stop-smoking service sees the referrals routed to it, a unit its own."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import NotFound
from app.identity.principal import Principal
from app.orgs.models import Organisation, OrganisationKind
from app.pregnancies.models import Pregnancy
from referral.lifecycle import ReferralStatus
from referral.models import Referral, ReferralEvent

RECORD_TYPE = "referral"


def get_for_reader_or_raise(
    session: Session, *, principal: Principal, referral_id: int, action: str = audit.Action.read
) -> Referral:
    """The referral if the caller's organisation may see it; otherwise 404, audited."""
    statement = select(Referral).where(Referral.id == referral_id)
    if principal.organisation_kind == OrganisationKind.stop_smoking_service:
        statement = statement.where(Referral.service_id == principal.organisation_id)
    else:
        statement = statement.join(Pregnancy, Pregnancy.id == Referral.pregnancy_id).where(
            Pregnancy.unit_id == principal.organisation_id
        )
    referral = session.scalars(statement).one_or_none()
    if referral is None:
        audit.record_denied(
            session,
            actor=principal,
            action=action,
            reason="not_found",
            record_type=RECORD_TYPE,
            record_id=referral_id,
        )
        raise NotFound(f"No referral {referral_id} is visible to your organisation.")
    audit.record(
        session,
        actor=principal,
        action=action,
        record_type=RECORD_TYPE,
        record_id=referral.id,
        subject_pregnancy_id=referral.pregnancy_id,
    )
    return referral


HANDED_BACK = (ReferralStatus.uncontactable.value, ReferralStatus.not_engaged.value)


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    overdue: bool | None = None
    service_code: str | None = None
    handed_back: bool = False


def _visible(principal: Principal) -> Select[Referral]:
    statement = select(Referral).join(Pregnancy, Pregnancy.id == Referral.pregnancy_id)
    if principal.organisation_kind == OrganisationKind.stop_smoking_service:
        return statement.where(Referral.service_id == principal.organisation_id)
    return statement.where(Pregnancy.unit_id == principal.organisation_id)


def list_queue(
    session: Session,
    *,
    principal: Principal,
    where: QueueFilter,
    now: dt.datetime,
    page: int,
    page_size: int,
) -> tuple[list[Referral], int]:
    """The caller's referrals, first contact due soonest first; each listed row is audited."""
    statement = _visible(principal)
    if where.handed_back:
        statement = statement.where(Referral.status.in_(HANDED_BACK))
    if where.statuses:
        statement = statement.where(Referral.status.in_(where.statuses))
    if where.service_code:
        statement = statement.join(Organisation, Organisation.id == Referral.service_id).where(
            Organisation.code == where.service_code.upper()
        )
    if where.overdue is not None:
        late = (Referral.status == ReferralStatus.pending.value) & (
            Referral.first_contact_due_at < now
        )
        statement = statement.where(late if where.overdue else ~late)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = list(
        session.scalars(
            statement.order_by(
                Referral.first_contact_due_at.asc().nulls_last(),
                Referral.opened_at.asc(),
                Referral.id.asc(),
            )
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    )
    for referral in rows:
        audit.record(
            session,
            actor=principal,
            action=audit.Action.search,
            record_type=RECORD_TYPE,
            record_id=referral.id,
            subject_pregnancy_id=referral.pregnancy_id,
        )
    return rows, total


def is_overdue(referral: Referral, now: dt.datetime) -> bool:
    return (
        referral.status == ReferralStatus.pending.value
        and referral.first_contact_due_at is not None
        and referral.first_contact_due_at < now
    )


def events_of(session: Session, referral: Referral) -> list[ReferralEvent]:
    return list(
        session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral.id)
            .order_by(ReferralEvent.occurred_at, ReferralEvent.id)
        )
    )
