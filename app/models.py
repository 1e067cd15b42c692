"""Every ORM module, imported so that ``Base.metadata`` is complete (for Alembic and mappers)."""

from app.audit.models import AuditEvent
from app.identity.models import ApiClient, User, WebSession
from app.orgs.models import Organisation
from app.pregnancies.models import Contact, Pregnancy
from app.readings.models import Reading
from referral.models import OutboxMessage, Referral, ReferralEvent

__all__ = [
    "ApiClient",
    "AuditEvent",
    "Contact",
    "Organisation",
    "OutboxMessage",
    "Pregnancy",
    "Reading",
    "Referral",
    "ReferralEvent",
    "User",
    "WebSession",
]
