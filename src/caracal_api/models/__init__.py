"""Every SQLAlchemy model, one module per aggregate; names follow schema.md exactly.

Importing this package registers every table on `Base.metadata` (Alembic's target).
"""

from caracal_api.models.admin_audit import AdminAuditEvent
from caracal_api.models.admin_tokens import AdminToken
from caracal_api.models.applications import Application
from caracal_api.models.audit_events import AuditEvent, AuditIngestAlert
from caracal_api.models.authority import AgentSession, AuthorityRecord, DelegationEdge
from caracal_api.models.base import Base
from caracal_api.models.grants import DelegatedGrant
from caracal_api.models.outbox import EventOutbox
from caracal_api.models.policies import (
    Policy,
    PolicySet,
    PolicySetBinding,
    PolicySetVersion,
    PolicyVersion,
)
from caracal_api.models.provider_connections import ProviderConnection
from caracal_api.models.providers import Provider
from caracal_api.models.resources import Resource
from caracal_api.models.secret_store import SecretStoreEntry
from caracal_api.models.step_up import StepUpChallenge
from caracal_api.models.zones import Zone

__all__ = [
    "AdminAuditEvent",
    "AdminToken",
    "AgentSession",
    "Application",
    "AuditEvent",
    "AuditIngestAlert",
    "AuthorityRecord",
    "Base",
    "DelegatedGrant",
    "DelegationEdge",
    "EventOutbox",
    "Policy",
    "PolicySet",
    "PolicySetBinding",
    "PolicySetVersion",
    "PolicyVersion",
    "Provider",
    "ProviderConnection",
    "Resource",
    "SecretStoreEntry",
    "StepUpChallenge",
    "Zone",
]
