"""Every ORM module, imported so that ``Base.metadata`` is complete (for Alembic and mappers)."""

import app.measures.rollup  # noqa: F401  (marks the measures each write may change)
from app.audit.models import AuditEvent
from app.idempotency.models import IdempotencyRecord
from app.identity.models import ApiClient, User, WebSession
from app.measures.models import (
    MeasureMark,
    MeasureMonth,
    ServiceFeedback,
    StaffMember,
    StaffTraining,
)
from app.monitors.models import DeviceReading, Monitor
from app.oauth.models import AccessToken, ClientKey, UsedAssertion
from app.orgs.models import Organisation
from app.pregnancies.models import Contact, PostnatalStatus, Pregnancy
from app.readings.models import Reading
from referral.delivery.models import DeliveryDestination, DeliverySecret, OutboxDeliveryState
from referral.models import OutboxMessage, Referral, ReferralEvent, ServiceArea

__all__ = [
    "AccessToken",
    "ApiClient",
    "AuditEvent",
    "ClientKey",
    "Contact",
    "DeliveryDestination",
    "DeliverySecret",
    "DeviceReading",
    "IdempotencyRecord",
    "MeasureMark",
    "MeasureMonth",
    "Monitor",
    "Organisation",
    "OutboxDeliveryState",
    "OutboxMessage",
    "PostnatalStatus",
    "Pregnancy",
    "Reading",
    "Referral",
    "ReferralEvent",
    "ServiceArea",
    "ServiceFeedback",
    "StaffMember",
    "StaffTraining",
    "UsedAssertion",
    "User",
    "WebSession",
]
