"""Schema acceptance (schema.md §5) against a freshly created and migrated database.

Expectations are transcribed from schema.md, not derived from the models or the migrations,
so a drift in either shows up here. Index definitions and CHECK expressions are compared
after PostgreSQL itself normalised both sides (the expected text is applied to a temporary
copy of the table and deparsed), which keeps the expectations readable as written in the
spec.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import AddConstraint, CreateIndex

from caracal_api.kit.migrate import (
    HEAD,
    AuditPartition,
    alembic_config,
    audit_partition_window,
    current_revision,
    sqlalchemy_url,
    upgrade_head,
)
from caracal_api.models import AuditIngestAlert, Base
from tests.fixtures.pg import admin_dsn, create_database, drop_database, server_unreachable

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# UTC+14: a partition bound read in the session's zone would land 14 hours off midnight UTC.
SERVER_TIMEZONE = "Pacific/Kiritimati"

TS = "timestamp with time zone"

# ---------------------------------------------------------------------------------------
# Expected catalog, transcribed from schema.md §2 and §3.
# Columns: "name type NN|null [default as PostgreSQL reports it]"; "ts" = timestamptz.
# ---------------------------------------------------------------------------------------

EXPECTED_COLUMNS: dict[str, str] = {
    "zones": """
        id text NN
        name text NN
        slug text NN
        dcr_enabled boolean NN false
        created_at ts NN now()
        updated_at ts NN now()
        archived_at ts null
        owner_account_id text null
        operator_coauthor_badge boolean NN true
        operator_governed boolean NN false
        created_by text null
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
    """,
    "admin_tokens": """
        id text NN
        name text NN
        token_sha256 bytea NN
        scope text NN
        zone_id text null
        created_by text NN
        created_at ts NN now()
        last_used_at ts null
        revoked_at ts null
        token_hash text null
        capability text NN 'write'::text
    """,
    "admin_audit_events": """
        id text NN
        request_id text NN
        actor_id text null
        actor_name text null
        actor_scope text null
        action text NN
        method text NN
        path text NN
        zone_id text null
        entity_type text null
        entity_id text null
        status_code integer NN
        payload_json jsonb null
        occurred_at ts NN now()
        content_sha256 text null
        prev_content_sha256 text null
        chain_hmac text null
        chain_seq bigint null
    """,
    "applications": """
        id text NN
        zone_id text NN
        name text NN
        registration_method text NN
        credential_type text NN 'token'::text
        client_secret_hash text null
        traits text[] NN '{}'::text[]
        expires_at ts null
        archived_at ts null
        created_at ts NN now()
        created_by text null
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
        updated_at ts null
    """,
    "providers": """
        id text NN
        zone_id text NN
        name text NN
        identifier text NN
        config_json jsonb NN '{}'::jsonb
        created_at ts NN now()
        updated_at ts NN now()
        archived_at ts null
        secret_config_keys text[] NN '{}'::text[]
        provider_kind text NN
        connectivity_failed_at ts null
        created_by text null
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
    """,
    "resources": """
        id text NN
        zone_id text NN
        name text NN
        identifier text NN
        upstream_url text null
        credential_provider_id text NN
        scopes text[] NN '{}'::text[]
        created_at ts NN now()
        updated_at ts NN now()
        archived_at ts null
        operations jsonb NN '[]'::jsonb
        operation_enforcement text NN 'transport_uniform'::text
        created_by text null
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
    """,
    "delegated_grants": """
        id text NN
        zone_id text NN
        application_id text null
        user_id text NN
        resource_id text NN
        scopes text[] NN
        status text NN 'active'::text
        created_at ts NN now()
        updated_at ts NN now()
        created_by text null
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
    """,
    "provider_connections": """
        id text NN
        zone_id text NN
        subject_id text NN
        provider_id text NN
        status text NN 'active'::text
        access_token_ct bytea null
        refresh_token_ct bytea null
        expires_at ts null
        refreshed_at ts null
        refresh_token_version integer NN 0
        created_at ts NN now()
        updated_at ts NN now()
    """,
    "secret_store": """
        ref text NN
        zone_id text NN
        envelope bytea NN
        version integer NN 1
        created_at ts NN now()
        updated_at ts NN now()
    """,
    "policies": """
        id text NN
        zone_id text NN
        name text NN
        description text null
        archived_at ts null
        created_by text NN
        created_at ts NN now()
        updated_at ts NN now()
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
    """,
    "policy_versions": """
        id text NN
        policy_id text NN
        version integer NN
        content text NN
        content_sha256 text NN
        schema_version text NN
        created_by text NN
        created_at ts NN now()
        archived_at ts null
        created_via_operator boolean NN false
    """,
    "policy_sets": """
        id text NN
        zone_id text NN
        name text NN
        description text null
        archived_at ts null
        created_by text NN
        created_at ts NN now()
        updated_at ts NN now()
        created_via_operator boolean NN false
        updated_by text null
        updated_via_operator boolean NN false
    """,
    "policy_set_versions": """
        id text NN
        policy_set_id text NN
        version integer NN
        manifest_json jsonb NN
        manifest_sha256 text NN
        schema_version text NN
        created_by text NN
        created_at ts NN now()
        archived_at ts null
        created_via_operator boolean NN false
    """,
    "policy_set_bindings": """
        zone_id text NN
        policy_set_id text NN
        active_version_id text null
        updated_at ts NN now()
    """,
    "event_outbox": """
        id text NN
        stream_name text NN
        payload_json jsonb NN
        attempts integer NN 0
        available_at ts NN now()
        locked_until ts null
        locked_by text null
        last_error text null
        dispatched_at ts null
        request_id text null
        created_at ts NN now()
    """,
    "step_up_challenges": """
        id text NN
        zone_id text NN
        session_id text null
        challenge_type text NN
        metadata_json jsonb NN '{}'::jsonb
        created_at ts NN now()
        expires_at ts NN
        satisfied_at ts null
        principal_id text null
        resource_set_hash bytea null
        consumed_at ts null
        approver_subject_id text null
        application_id text null
        tier text null
        approver_class text NN 'operator'::text
        privacy_mode text NN 'identified'::text
        rejected_at ts null
        decision_reason text null
        approver_session_id text null
    """,
    "authority_records": """
        id text NN
        zone_id text NN
        session_type text NN
        subject_id text null
        parent_id text null
        status text NN 'active'::text
        expires_at ts NN
        authenticated_at ts NN
        claims_json jsonb null
        created_at ts NN now()
        revoked_at ts null
        revoked_reason text null
    """,
    "sessions": """
        id text NN
        zone_id text NN
        application_id text NN
        parent_id text null
        subject_authority_record_id text NN
        status text NN 'active'::text
        depth integer NN 0
        labels text[] NN '{}'::text[]
        max_children integer NN 10
        child_count integer NN 0
        started_at ts NN now()
        last_active_at ts NN now()
        terminated_at ts null
        ttl_seconds integer null 3600
        metadata_json jsonb null
        updated_at ts NN now()
        lifecycle text NN 'task'::text
        last_heartbeat_at ts null
        heartbeat_deadline_at ts null
        termination_reason text null
        lease_generation bigint NN 0
    """,
    "delegation_edges": """
        id text NN
        zone_id text NN
        source_session_id text NN
        target_session_id text NN
        issuer_application_id text NN
        receiver_application_id text NN
        resource_id text null
        scopes text[] NN '{}'::text[]
        constraints_json jsonb NN '{}'::jsonb
        status text NN 'active'::text
        expires_at ts NN
        edge_version integer NN 0
        revoked_at ts null
        created_at ts NN now()
        updated_at ts NN now()
        parent_edge_id text null
    """,
    "audit_events": """
        id text NN
        zone_id text NN
        event_type text NN
        request_id text null
        decision text null
        policy_set_id text null
        policy_set_version_id text null
        manifest_sha text null
        evaluation_status text null
        determining_policies_json jsonb null
        diagnostics_json jsonb null
        metadata_json jsonb null
        occurred_at ts NN
        ingested_at ts NN now()
        content_sha256 text null
        prev_content_sha256 text null
        chain_hmac text null
        chain_seq bigint null
        ingest_signature text null
    """,
    "audit_ingest_alerts": """
        id bigint NN nextval('audit_ingest_alerts_id_seq'::regclass)
        event_id text NN
        zone_id text NN
        kind text NN
        detail text null
        observed_at ts NN now()
    """,
}

PK, UNIQUE, FK, CHECK = "p", "u", "f", "c"


def _fk(columns: str, target: str, on_delete: str = "") -> tuple[str, str]:
    action = f" ON DELETE {on_delete}" if on_delete else ""
    return FK, f"FOREIGN KEY ({columns}) REFERENCES {target}{action}"


# name -> (table, kind, definition). PK/UNIQUE/FK definitions are pg_get_constraintdef()
# output; CHECK expressions are the spec's text, normalised by PostgreSQL before comparing.
EXPECTED_CONSTRAINTS: dict[str, tuple[str, tuple[str, str]]] = {
    "zones_pkey": ("zones", (PK, "PRIMARY KEY (id)")),
    "zones_slug_key": ("zones", (UNIQUE, "UNIQUE (slug)")),
    "admin_tokens_pkey": ("admin_tokens", (PK, "PRIMARY KEY (id)")),
    "admin_tokens_zone_id_fkey": ("admin_tokens", _fk("zone_id", "zones(id)", "CASCADE")),
    "admin_tokens_scope_check": ("admin_tokens", (CHECK, "scope IN ('global','zone')")),
    "admin_tokens_capability_check": (
        "admin_tokens",
        (CHECK, "capability IN ('read','write','approve')"),
    ),
    "admin_token_scope_zone_pair": (
        "admin_tokens",
        (
            CHECK,
            "(scope = 'global' AND zone_id IS NULL) OR (scope = 'zone' AND zone_id IS NOT NULL)",
        ),
    ),
    "admin_audit_events_pkey": ("admin_audit_events", (PK, "PRIMARY KEY (id)")),
    "applications_pkey": ("applications", (PK, "PRIMARY KEY (id)")),
    "applications_zone_id_id_unique": ("applications", (UNIQUE, "UNIQUE (zone_id, id)")),
    "applications_zone_id_fkey": ("applications", _fk("zone_id", "zones(id)")),
    "applications_registration_method_check": (
        "applications",
        (CHECK, "registration_method IN ('managed','dcr')"),
    ),
    "applications_credential_type_check": ("applications", (CHECK, "credential_type = 'token'")),
    "applications_dcr_expires_at_required": (
        "applications",
        (CHECK, "registration_method <> 'dcr' OR expires_at IS NOT NULL"),
    ),
    "providers_pkey": ("providers", (PK, "PRIMARY KEY (id)")),
    "providers_zone_id_id_unique": ("providers", (UNIQUE, "UNIQUE (zone_id, id)")),
    "providers_zone_id_fkey": ("providers", _fk("zone_id", "zones(id)")),
    "providers_provider_kind_check": (
        "providers",
        (
            CHECK,
            "provider_kind IN ('none','caracal_mandate','oauth2_authorization_code',"
            "'oauth2_client_credentials','api_key','bearer_token','http_basic')",
        ),
    ),
    "resources_pkey": ("resources", (PK, "PRIMARY KEY (id)")),
    "resources_zone_id_id_unique": ("resources", (UNIQUE, "UNIQUE (zone_id, id)")),
    "resources_zone_id_fkey": ("resources", _fk("zone_id", "zones(id)")),
    "resources_credential_provider_id_fkey": (
        "resources",
        _fk("credential_provider_id", "providers(id)"),
    ),
    "resources_zone_provider_fk": (
        "resources",
        _fk("zone_id, credential_provider_id", "providers(zone_id, id)"),
    ),
    "resources_operation_enforcement_check": (
        "resources",
        (CHECK, "operation_enforcement IN ('enforced','transport_uniform')"),
    ),
    "delegated_grants_pkey": ("delegated_grants", (PK, "PRIMARY KEY (id)")),
    "delegated_grants_zone_id_fkey": ("delegated_grants", _fk("zone_id", "zones(id)")),
    "delegated_grants_application_id_fkey": (
        "delegated_grants",
        _fk("application_id", "applications(id)"),
    ),
    "delegated_grants_zone_application_fk": (
        "delegated_grants",
        _fk("zone_id, application_id", "applications(zone_id, id)"),
    ),
    "delegated_grants_resource_id_fkey": (
        "delegated_grants",
        _fk("resource_id", "resources(id)"),
    ),
    "delegated_grants_zone_resource_fk": (
        "delegated_grants",
        _fk("zone_id, resource_id", "resources(zone_id, id)"),
    ),
    "delegated_grants_status_check": (
        "delegated_grants",
        (CHECK, "status IN ('active','revoked','expired')"),
    ),
    "provider_connections_pkey": ("provider_connections", (PK, "PRIMARY KEY (id)")),
    "provider_connections_zone_provider_fk": (
        "provider_connections",
        _fk("zone_id, provider_id", "providers(zone_id, id)"),
    ),
    "provider_connections_status_check": (
        "provider_connections",
        (CHECK, "status IN ('active','revoked','expired')"),
    ),
    "secret_store_pkey": ("secret_store", (PK, "PRIMARY KEY (ref)")),
    "secret_store_zone_id_fkey": ("secret_store", _fk("zone_id", "zones(id)")),
    "policies_pkey": ("policies", (PK, "PRIMARY KEY (id)")),
    "policies_zone_id_fkey": ("policies", _fk("zone_id", "zones(id)")),
    "policy_versions_pkey": ("policy_versions", (PK, "PRIMARY KEY (id)")),
    "policy_versions_policy_id_fkey": ("policy_versions", _fk("policy_id", "policies(id)")),
    "policy_versions_policy_id_version_key": (
        "policy_versions",
        (UNIQUE, "UNIQUE (policy_id, version)"),
    ),
    "policy_sets_pkey": ("policy_sets", (PK, "PRIMARY KEY (id)")),
    "policy_sets_zone_id_fkey": ("policy_sets", _fk("zone_id", "zones(id)")),
    "policy_set_versions_pkey": ("policy_set_versions", (PK, "PRIMARY KEY (id)")),
    "policy_set_versions_policy_set_id_fkey": (
        "policy_set_versions",
        _fk("policy_set_id", "policy_sets(id)"),
    ),
    "policy_set_versions_policy_set_id_version_key": (
        "policy_set_versions",
        (UNIQUE, "UNIQUE (policy_set_id, version)"),
    ),
    "policy_set_bindings_pkey": (
        "policy_set_bindings",
        (PK, "PRIMARY KEY (zone_id, policy_set_id)"),
    ),
    "policy_set_bindings_zone_id_fkey": ("policy_set_bindings", _fk("zone_id", "zones(id)")),
    "policy_set_bindings_policy_set_id_fkey": (
        "policy_set_bindings",
        _fk("policy_set_id", "policy_sets(id)"),
    ),
    "policy_set_bindings_active_version_id_fkey": (
        "policy_set_bindings",
        _fk("active_version_id", "policy_set_versions(id)"),
    ),
    "event_outbox_pkey": ("event_outbox", (PK, "PRIMARY KEY (id)")),
    "step_up_challenges_pkey": ("step_up_challenges", (PK, "PRIMARY KEY (id)")),
    "step_up_challenges_zone_id_fkey": (
        "step_up_challenges",
        _fk("zone_id", "zones(id)", "CASCADE"),
    ),
    "step_up_challenges_application_id_fkey": (
        "step_up_challenges",
        _fk("application_id", "applications(id)", "CASCADE"),
    ),
    "step_up_challenges_challenge_type_check": (
        "step_up_challenges",
        (CHECK, "challenge_type = 'human_approval'"),
    ),
    "step_up_challenges_approver_class_check": (
        "step_up_challenges",
        (CHECK, "approver_class IN ('operator','subject','any')"),
    ),
    "step_up_challenges_privacy_mode_check": (
        "step_up_challenges",
        (CHECK, "privacy_mode IN ('identified','pseudonymous','anonymous')"),
    ),
    "authority_records_pkey": ("authority_records", (PK, "PRIMARY KEY (id)")),
    "authority_records_zone_id_id_unique": (
        "authority_records",
        (UNIQUE, "UNIQUE (zone_id, id)"),
    ),
    "authority_records_zone_id_fkey": ("authority_records", _fk("zone_id", "zones(id)")),
    "authority_records_parent_id_fkey": (
        "authority_records",
        _fk("parent_id", "authority_records(id)"),
    ),
    "authority_records_session_type_check": (
        "authority_records",
        (CHECK, "session_type IN ('user','application')"),
    ),
    "authority_records_status_check": (
        "authority_records",
        (CHECK, "status IN ('active','revoked','expired')"),
    ),
    "sessions_pkey": ("sessions", (PK, "PRIMARY KEY (id)")),
    "sessions_zone_id_id_unique": ("sessions", (UNIQUE, "UNIQUE (zone_id, id)")),
    "sessions_zone_application_fk": (
        "sessions",
        _fk("zone_id, application_id", "applications(zone_id, id)"),
    ),
    "sessions_parent_id_fkey": ("sessions", _fk("parent_id", "sessions(id)")),
    "sessions_zone_parent_fk": ("sessions", _fk("zone_id, parent_id", "sessions(zone_id, id)")),
    "sessions_zone_authority_record_fk": (
        "sessions",
        _fk("zone_id, subject_authority_record_id", "authority_records(zone_id, id)"),
    ),
    "sessions_status_check": (
        "sessions",
        (CHECK, "status IN ('active','suspended','terminated','expired')"),
    ),
    "sessions_lifecycle_check": ("sessions", (CHECK, "lifecycle IN ('task','service')")),
    "sessions_lease_generation_check": ("sessions", (CHECK, "lease_generation >= 0")),
    "sessions_terminal_fields_check": (
        "sessions",
        (
            CHECK,
            "(status IN ('terminated','expired') AND terminated_at IS NOT NULL) OR"
            " (status IN ('active','suspended') AND terminated_at IS NULL)",
        ),
    ),
    "sessions_lifecycle_fields_check": (
        "sessions",
        (
            CHECK,
            "(lifecycle = 'task' AND ttl_seconds IS NOT NULL AND ttl_seconds > 0"
            " AND last_heartbeat_at IS NULL AND heartbeat_deadline_at IS NULL) OR"
            " (lifecycle = 'service' AND ttl_seconds IS NULL AND last_heartbeat_at IS NOT NULL"
            " AND heartbeat_deadline_at IS NOT NULL)",
        ),
    ),
    "delegation_edges_pkey": ("delegation_edges", (PK, "PRIMARY KEY (id)")),
    "delegation_edges_zone_id_id_unique": ("delegation_edges", (UNIQUE, "UNIQUE (zone_id, id)")),
    "delegation_edges_source_session_id_fkey": (
        "delegation_edges",
        _fk("source_session_id", "sessions(id)", "CASCADE"),
    ),
    "delegation_edges_zone_source_fk": (
        "delegation_edges",
        _fk("zone_id, source_session_id", "sessions(zone_id, id)", "CASCADE"),
    ),
    "delegation_edges_target_session_id_fkey": (
        "delegation_edges",
        _fk("target_session_id", "sessions(id)", "CASCADE"),
    ),
    "delegation_edges_zone_target_fk": (
        "delegation_edges",
        _fk("zone_id, target_session_id", "sessions(zone_id, id)", "CASCADE"),
    ),
    "delegation_edges_zone_issuer_application_fk": (
        "delegation_edges",
        _fk("zone_id, issuer_application_id", "applications(zone_id, id)"),
    ),
    "delegation_edges_zone_receiver_application_fk": (
        "delegation_edges",
        _fk("zone_id, receiver_application_id", "applications(zone_id, id)"),
    ),
    "delegation_edges_resource_id_fkey": (
        "delegation_edges",
        _fk("resource_id", "resources(id)"),
    ),
    "delegation_edges_zone_resource_fk": (
        "delegation_edges",
        _fk("zone_id, resource_id", "resources(zone_id, id)"),
    ),
    "delegation_edges_zone_parent_fk": (
        "delegation_edges",
        _fk(
            "zone_id, parent_edge_id", "delegation_edges(zone_id, id)", "SET NULL (parent_edge_id)"
        ),
    ),
    "delegation_edges_status_check": (
        "delegation_edges",
        (CHECK, "status IN ('active','revoked','expired')"),
    ),
    "delegation_edges_check": (
        "delegation_edges",
        (CHECK, "source_session_id <> target_session_id"),
    ),
    "delegation_edges_revocation_fields_check": (
        "delegation_edges",
        (
            CHECK,
            "(status = 'revoked' AND revoked_at IS NOT NULL) OR"
            " (status IN ('active','expired') AND revoked_at IS NULL)",
        ),
    ),
    "audit_events_pkey": ("audit_events", (PK, "PRIMARY KEY (id, occurred_at)")),
    "audit_ingest_alerts_pkey": ("audit_ingest_alerts", (PK, "PRIMARY KEY (id)")),
}

# name -> "[UNIQUE ]<table> <rest of CREATE INDEX>", as written in schema.md.
EXPECTED_INDEXES: dict[str, str] = {
    "zones_active_idx": "zones (id) WHERE archived_at IS NULL",
    "zones_owner_account_id_idx": "zones (owner_account_id) WHERE owner_account_id IS NOT NULL",
    "admin_tokens_token_sha256_active": (
        "UNIQUE admin_tokens (token_sha256) WHERE revoked_at IS NULL"
    ),
    "admin_tokens_zone_active": (
        "admin_tokens (zone_id) WHERE revoked_at IS NULL AND scope = 'zone'"
    ),
    "admin_audit_events_actor_time": (
        "admin_audit_events (actor_id, occurred_at DESC) WHERE actor_id IS NOT NULL"
    ),
    "admin_audit_events_chain": "admin_audit_events (zone_id, chain_seq DESC)",
    "admin_audit_events_request": "admin_audit_events (request_id)",
    "admin_audit_events_zone_time": "admin_audit_events (zone_id, occurred_at DESC)",
    "applications_zone_id_expires_at_idx": (
        "applications (zone_id, expires_at) WHERE expires_at IS NOT NULL"
    ),
    "applications_zone_id_idx": "applications (zone_id)",
    "applications_zone_keyset_idx": (
        "applications (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL"
    ),
    "providers_active_idx": "providers (id) WHERE archived_at IS NULL",
    "providers_zone_identifier_active_uidx": (
        "UNIQUE providers (zone_id, identifier) WHERE archived_at IS NULL"
    ),
    "providers_zone_keyset_idx": (
        "providers (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL"
    ),
    "resources_active_idx": "resources (id) WHERE archived_at IS NULL",
    "resources_credential_provider_id_idx": "resources (credential_provider_id)",
    "resources_zone_keyset_idx": (
        "resources (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL"
    ),
    "resources_zone_id_identifier_key": (
        "UNIQUE resources (zone_id, identifier) WHERE archived_at IS NULL"
    ),
    "delegated_grants_zone_id_user_id_idx": "delegated_grants (zone_id, user_id)",
    "delegated_grants_zone_id_user_id_resource_id_status_idx": (
        "delegated_grants (zone_id, user_id, resource_id, status)"
    ),
    "delegated_grants_zone_keyset_idx": "delegated_grants (zone_id, created_at DESC, id DESC)",
    "provider_connections_active_subject_provider_uidx": (
        "UNIQUE provider_connections (zone_id, subject_id, provider_id) WHERE status = 'active'"
    ),
    "provider_connections_zone_provider_status_idx": (
        "provider_connections (zone_id, provider_id, status)"
    ),
    "provider_connections_zone_subject_status_idx": (
        "provider_connections (zone_id, subject_id, status)"
    ),
    "secret_store_zone_id_idx": "secret_store (zone_id)",
    "policies_zone_id_name_key": "UNIQUE policies (zone_id, name) WHERE archived_at IS NULL",
    "policies_zone_keyset_idx": (
        "policies (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL"
    ),
    "policy_versions_policy_id_created_at_idx": "policy_versions (policy_id, created_at DESC)",
    "policy_sets_zone_id_name_key": "UNIQUE policy_sets (zone_id, name) WHERE archived_at IS NULL",
    "policy_sets_zone_keyset_idx": (
        "policy_sets (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL"
    ),
    "policy_set_bindings_one_active_per_zone": (
        "UNIQUE policy_set_bindings (zone_id) WHERE active_version_id IS NOT NULL"
    ),
    "event_outbox_dispatch_ready": "event_outbox (available_at) WHERE dispatched_at IS NULL",
    "event_outbox_undispatched_age": "event_outbox (created_at) WHERE dispatched_at IS NULL",
    "step_up_challenges_application_idx": (
        "step_up_challenges (application_id) WHERE application_id IS NOT NULL"
    ),
    "step_up_challenges_approver": (
        "step_up_challenges (approver_subject_id) WHERE approver_subject_id IS NOT NULL"
    ),
    "step_up_challenges_consume_uniq": (
        "UNIQUE step_up_challenges (id) WHERE consumed_at IS NOT NULL"
    ),
    "step_up_challenges_expires_idx": "step_up_challenges (expires_at)",
    "step_up_challenges_live_binding_uniq": (
        "UNIQUE step_up_challenges (zone_id, principal_id, session_id, resource_set_hash)"
        " NULLS NOT DISTINCT WHERE consumed_at IS NULL"
    ),
    "step_up_challenges_session_id_idx": "step_up_challenges (session_id)",
    "step_up_challenges_zone_keyset_idx": "step_up_challenges (zone_id, created_at DESC, id DESC)",
    "step_up_challenges_zone_principal": (
        "step_up_challenges (zone_id, principal_id) WHERE consumed_at IS NULL"
    ),
    "authority_records_expires_at_idx": "authority_records (expires_at) WHERE status = 'active'",
    "authority_records_zone_active_idx": (
        "authority_records (zone_id, expires_at) WHERE status = 'active'"
    ),
    "authority_records_zone_created_idx": "authority_records (zone_id, created_at DESC, id DESC)",
    "authority_records_zone_id_subject_id_status_idx": (
        "authority_records (zone_id, subject_id, status)"
    ),
    "authority_records_zone_subject_idx": "authority_records (zone_id, subject_id)",
    "sessions_last_active_at_idx": "sessions (last_active_at) WHERE status = 'active'",
    "sessions_terminal_retention_idx": (
        "sessions (terminated_at, id) WHERE status IN ('terminated','expired')"
    ),
    "sessions_service_heartbeat_deadline_idx": (
        "sessions (heartbeat_deadline_at) WHERE status = 'active' AND lifecycle = 'service'"
    ),
    "sessions_subject_authority_record_id_idx": "sessions (subject_authority_record_id)",
    "sessions_zone_id_parent_id_status_idx": "sessions (zone_id, parent_id, status)",
    "delegation_edges_expires_at_idx": "delegation_edges (expires_at) WHERE status = 'active'",
    "delegation_edges_zone_id_parent_edge_id_idx": (
        "delegation_edges (zone_id, parent_edge_id) WHERE parent_edge_id IS NOT NULL"
    ),
    "delegation_edges_zone_id_resource_id_status_idx": (
        "delegation_edges (zone_id, resource_id, status) WHERE resource_id IS NOT NULL"
    ),
    "delegation_edges_zone_id_source_session_id_status_idx": (
        "delegation_edges (zone_id, source_session_id, status)"
    ),
    "delegation_edges_zone_id_target_session_id_status_idx": (
        "delegation_edges (zone_id, target_session_id, status)"
    ),
    "audit_events_agent_labels_idx": ("audit_events USING gin ((metadata_json -> 'agent_labels'))"),
    "audit_events_agent_session_idx": (
        "audit_events ((metadata_json ->> 'agent_session_id'))"
        " WHERE metadata_json ? 'agent_session_id'"
    ),
    "audit_events_session_idx": (
        "audit_events ((metadata_json ->> 'session_id')) WHERE metadata_json ? 'session_id'"
    ),
    "audit_events_request_id_idx": "audit_events (request_id) WHERE request_id IS NOT NULL",
    "audit_events_zone_chain": "audit_events (zone_id, chain_seq DESC)",
    "audit_events_zone_id_occurred_at_idx": "audit_events (zone_id, occurred_at DESC)",
    "audit_ingest_alerts_zone_time": "audit_ingest_alerts (zone_id, observed_at DESC)",
    # §3 (revision 0002)
    "applications_zone_managed_name_active_uidx": (
        "UNIQUE applications (zone_id, lower(name))"
        " WHERE archived_at IS NULL AND registration_method = 'managed'"
    ),
    "event_outbox_invalidate_set_idx": (
        "event_outbox ((payload_json->>'zone_id'), (payload_json->>'policy_set_id'),"
        " created_at DESC, id DESC) WHERE stream_name = 'caracal.policy.invalidate'"
    ),
    "sessions_zone_started_keyset_idx": "sessions (zone_id, started_at DESC, id DESC)",
    "admin_audit_events_zone_keyset_idx": (
        "admin_audit_events (zone_id, occurred_at DESC, id DESC)"
    ),
    "admin_audit_events_unchained_idx": (
        "admin_audit_events (zone_id, occurred_at, id) WHERE chain_seq IS NULL"
    ),
    "step_up_challenges_zone_binding_idx": (
        "step_up_challenges (zone_id, resource_set_hash) WHERE resource_set_hash IS NOT NULL"
    ),
    "admin_audit_events_chain_seq_uidx": (
        "UNIQUE admin_audit_events (zone_id, chain_seq) NULLS NOT DISTINCT"
        " WHERE chain_seq IS NOT NULL"
    ),
    # revision 0003 (docs/objects.md, Resources)
    "resources_zone_identifier_probe_idx": 'resources (zone_id, identifier COLLATE "C")',
}

EXPECTED_TRIGGERS: dict[str, str] = {
    "policy_versions_immutable": (
        "CREATE TRIGGER policy_versions_immutable BEFORE DELETE OR UPDATE"
        " ON public.policy_versions FOR EACH ROW"
        " EXECUTE FUNCTION reject_policy_version_mutation()"
    ),
    "policy_set_versions_immutable": (
        "CREATE TRIGGER policy_set_versions_immutable BEFORE DELETE OR UPDATE"
        " ON public.policy_set_versions FOR EACH ROW"
        " EXECUTE FUNCTION reject_policy_version_mutation()"
    ),
    "event_outbox_notify": (
        "CREATE TRIGGER event_outbox_notify AFTER INSERT ON public.event_outbox"
        " FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify()"
    ),
}

# name -> a fragment its body must contain
EXPECTED_FUNCTIONS: dict[str, str] = {
    "reject_policy_version_mutation": "RAISE EXCEPTION 'policy_versions rows are immutable'",
    "event_outbox_notify": "PERFORM pg_notify('caracal_event_outbox', '')",
}

SECTION_3_OBJECTS = frozenset(
    {
        "applications_zone_managed_name_active_uidx",
        "event_outbox_notify",
        "event_outbox_invalidate_set_idx",
        "sessions_zone_started_keyset_idx",
        "admin_audit_events_zone_keyset_idx",
        "admin_audit_events_unchained_idx",
        "step_up_challenges_zone_binding_idx",
        "admin_audit_events_chain_seq_uidx",
        "resources_zone_identifier_probe_idx",  # revision 0003
    }
)


# ---------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigratedDatabase:
    admin_dsn: str
    name: str
    dsn: str
    # The migration ran somewhere in this interval; its "current month" is one of the ends'.
    started: datetime
    finished: datetime


async def _require_server(dsn: str) -> None:
    reason = await server_unreachable(dsn)
    if reason is None:
        return
    message = f"PostgreSQL unreachable at {dsn}: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def _db_name(suffix: str = "") -> str:
    return f"caracal_schema_{os.getpid()}{suffix}"


@pytest.fixture(scope="module")
async def migrated() -> AsyncIterator[MigratedDatabase]:
    admin = admin_dsn()
    await _require_server(admin)
    name = _db_name()
    await drop_database(admin, name)
    dsn = await create_database(admin, name)
    try:
        conn = await asyncpg.connect(admin)
        try:
            # Migrating under a far-from-UTC zone proves the partition bounds ignore it (§5.14).
            await conn.execute(f"ALTER DATABASE {name} SET TimeZone TO '{SERVER_TIMEZONE}'")
        finally:
            await conn.close()
        started = datetime.now(UTC)
        await upgrade_head(dsn)
        yield MigratedDatabase(admin, name, dsn, started, datetime.now(UTC))
    finally:
        await drop_database(admin, name)


@pytest.fixture
async def conn(migrated: MigratedDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    connection = await asyncpg.connect(migrated.dsn)
    tx = connection.transaction()
    await tx.start()
    try:
        yield connection
    finally:
        await tx.rollback()
        await connection.close()


@pytest.fixture
async def scratch_db(migrated: MigratedDatabase) -> AsyncIterator[tuple[str, str]]:
    """(name, dsn) of an empty extra database, dropped after the test."""
    name = _db_name(f"_{uuid.uuid4().hex[:8]}")
    dsn = await create_database(migrated.admin_dsn, name)
    try:
        yield name, dsn
    finally:
        await drop_database(migrated.admin_dsn, name)


def new_id() -> str:
    return uuid.uuid4().hex


async def violation(
    conn: asyncpg.Connection, sql: str, *args: Any
) -> asyncpg.IntegrityConstraintViolationError:
    """Run `sql` in a savepoint; return the integrity error it must raise."""
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as caught:
        async with conn.transaction():
            await conn.execute(sql, *args)
    return caught.value


async def make_zone(conn: asyncpg.Connection) -> str:
    zone_id = new_id()
    await conn.execute("INSERT INTO zones (id, name, slug) VALUES ($1, $1, $1)", zone_id)
    return zone_id


async def make_application(
    conn: asyncpg.Connection,
    zone_id: str,
    name: str = "app",
    *,
    method: str = "managed",
    expires_at: datetime | None = None,
) -> str:
    app_id = new_id()
    await conn.execute(
        "INSERT INTO applications (id, zone_id, name, registration_method, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        app_id,
        zone_id,
        name,
        method,
        expires_at,
    )
    return app_id


async def make_provider(conn: asyncpg.Connection, zone_id: str, identifier: str = "") -> str:
    provider_id = new_id()
    await conn.execute(
        "INSERT INTO providers (id, zone_id, name, identifier, provider_kind)"
        " VALUES ($1, $2, 'p', $3, 'none')",
        provider_id,
        zone_id,
        identifier or provider_id,
    )
    return provider_id


async def make_resource(
    conn: asyncpg.Connection, zone_id: str, provider_id: str, identifier: str = ""
) -> str:
    resource_id = new_id()
    await conn.execute(
        "INSERT INTO resources (id, zone_id, name, identifier, credential_provider_id)"
        " VALUES ($1, $2, 'r', $3, $4)",
        resource_id,
        zone_id,
        identifier or resource_id,
        provider_id,
    )
    return resource_id


async def make_named(conn: asyncpg.Connection, table: str, zone_id: str, name: str) -> str:
    """A row of policies or policy_sets (same columns)."""
    row_id = new_id()
    await conn.execute(
        f"INSERT INTO {table} (id, zone_id, name, created_by) VALUES ($1, $2, $3, 'test')",
        row_id,
        zone_id,
        name,
    )
    return row_id


async def make_policy_set_version(conn: asyncpg.Connection, policy_set_id: str) -> str:
    version_id = new_id()
    await conn.execute(
        "INSERT INTO policy_set_versions (id, policy_set_id, version, manifest_json,"
        " manifest_sha256, schema_version, created_by)"
        " VALUES ($1, $2, (SELECT count(*) + 1 FROM policy_set_versions"
        " WHERE policy_set_id = $2), '[]', 'sha', '2026-05-20', 'test')",
        version_id,
        policy_set_id,
    )
    return version_id


def _strip_schema(definition: str) -> str:
    # pg_get_indexdef qualifies the table (public./pg_temp_N.) and marks partitioned parents
    # with ONLY; neither is part of what the spec defines.
    return re.sub(r" ON (ONLY )?[a-z_0-9]+\.", " ON ", definition)


def _index_ddl(name: str, spec: str) -> tuple[str, str]:
    """(table, CREATE INDEX statement) of an EXPECTED_INDEXES entry."""
    rest = spec.removeprefix("UNIQUE ")
    unique = "UNIQUE " if rest != spec else ""
    return rest.split()[0], f"CREATE {unique}INDEX {name} ON {rest}"


async def _in_scratch_transaction(conn: asyncpg.Connection, tables: Iterable[str]) -> Any:
    """Start a transaction holding empty temporary copies of `tables` (same column types).

    Unqualified names resolve to the temporary copies first, so DDL written for the real
    table can be replayed on them and deparsed by PostgreSQL for comparison.
    """
    tx = conn.transaction()
    await tx.start()
    for table in sorted(set(tables)):
        await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table})")
    return tx


async def _temp_index_def(conn: asyncpg.Connection, name: str) -> str:
    return _strip_schema(
        await conn.fetchval(
            "SELECT pg_get_indexdef(c.oid) FROM pg_class c"
            " WHERE c.relname = $1 AND c.relnamespace = pg_my_temp_schema()",
            name,
        )
    )


async def _temp_check_def(conn: asyncpg.Connection, table: str, name: str) -> str:
    return await conn.fetchval(
        "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_class c"
        " ON c.oid = k.conrelid WHERE k.conname = $1 AND c.relname = $2"
        " AND c.relnamespace = pg_my_temp_schema()",
        name,
        table,
    )


async def real_index_defs(conn: asyncpg.Connection) -> dict[str, str]:
    """Every index on the non-partition tables of `public` (alembic_version aside)."""
    rows = await conn.fetch(
        "SELECT i.relname, pg_get_indexdef(i.oid) AS def FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relnamespace = 'public'::regnamespace AND NOT t.relispartition"
        " AND t.relname <> 'alembic_version'"
    )
    return {r["relname"]: _strip_schema(r["def"]) for r in rows}


async def real_constraints(conn: asyncpg.Connection) -> dict[str, tuple[str, str, str]]:
    """name -> (table, kind, definition) of PK/UNIQUE/FK/CHECK constraints in `public`."""
    rows = await conn.fetch(
        "SELECT k.conname, t.relname, k.contype::text, pg_get_constraintdef(k.oid) AS def"
        " FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid"
        " WHERE t.relnamespace = 'public'::regnamespace AND NOT t.relispartition"
        " AND t.relname <> 'alembic_version' AND k.contype IN ('p', 'u', 'f', 'c')"
    )
    return {r["conname"]: (r["relname"], r["contype"], r["def"]) for r in rows}


def parse_columns(spec: str) -> list[tuple[str, str, bool, str | None]]:
    columns = []
    for line in spec.strip().splitlines():
        name, type_, nullability, *default = line.split(maxsplit=3)
        columns.append(
            (
                name,
                TS if type_ == "ts" else type_,
                nullability == "NN",
                default[0] if default else None,
            )
        )
    return columns


async def catalog_snapshot(dsn: str) -> set[str]:
    """Everything about the `public` schema's structure, one line per fact."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET TimeZone = 'UTC'")
        facts: set[str] = set()
        for r in await conn.fetch(
            "SELECT c.relname, c.relkind::text, c.relispartition,"
            " pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_class c"
            " WHERE c.relnamespace = 'public'::regnamespace"
        ):
            facts.add(f"rel {r['relname']} {r['relkind']} {r['relispartition']} {r['bound']}")
        for r in await conn.fetch(
            "SELECT c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS t,"
            " a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS def"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
            " AND a.attnum > 0 AND NOT a.attisdropped"
        ):
            facts.add(
                f"col {r['relname']}.{r['attname']} #{r['attnum']} {r['t']}"
                f" notnull={r['attnotnull']} default={r['def']}"
            )
        for r in await conn.fetch(
            "SELECT k.conname, c.relname, pg_get_constraintdef(k.oid) AS def"
            " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
            " WHERE c.relnamespace = 'public'::regnamespace"
        ):
            facts.add(f"con {r['relname']}.{r['conname']} {r['def']}")
        for r in await conn.fetch(
            "SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace"
        ):
            facts.add(f"idx {r['def']}")
        for r in await conn.fetch(
            "SELECT pg_get_triggerdef(t.oid) AS def, t.tgenabled::text FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal"
        ):
            facts.add(f"trg {r['def']} {r['tgenabled']}")
        for r in await conn.fetch(
            "SELECT p.proname, pg_get_functiondef(p.oid) AS def FROM pg_proc p"
            " WHERE p.pronamespace = 'public'::regnamespace"
        ):
            facts.add(f"fn {r['proname']} {r['def']}")
        for r in await conn.fetch(
            "SELECT s.sequencename, s.data_type, s.start_value, s.increment_by,"
            " pg_get_serial_sequence('audit_ingest_alerts', 'id') AS owned"
            " FROM pg_sequences s WHERE s.schemaname = 'public'"
        ):
            facts.add(f"seq {tuple(r.values())}")
        return facts
    finally:
        await conn.close()


async def run_alembic(dsn: str, action: Callable[[Config], None]) -> None:
    """Run an Alembic command on a connection handed to env.py, as `upgrade_head` does."""
    config = alembic_config(dsn)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        action(config)

    engine = create_async_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


def expected_partitions(db: MigratedDatabase) -> list[list[AuditPartition]]:
    """The possible migration windows (two if the migration straddled a month change)."""
    return [audit_partition_window(moment) for moment in (db.started, db.finished)]


async def monthly_partitions(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """(name, lower, upper) of the monthly audit_events partitions, bounds read in UTC."""
    await conn.execute("SET LOCAL TimeZone = 'UTC'")
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'audit_events'::regclass AND c.relname <> 'audit_events_default'"
        " ORDER BY c.relname"
    )
    out = []
    for r in rows:
        m = re.fullmatch(r"FOR VALUES FROM \('([^']*)'\) TO \('([^']*)'\)", r["bound"])
        assert m is not None, r["bound"]
        out.append((r["relname"], m.group(1), m.group(2)))
    return out


# ---------------------------------------------------------------------------------------
# §5.1 — every object of §2 and §3, checked against pg_catalog
# ---------------------------------------------------------------------------------------


async def test_01_tables_columns_types_nullability_defaults(conn: asyncpg.Connection) -> None:
    tables = {
        r["relname"]: r["relkind"]
        for r in await conn.fetch(
            "SELECT relname, relkind::text FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'p') AND NOT relispartition"
        )
    }
    assert set(tables) == {*EXPECTED_COLUMNS, "alembic_version"}
    assert tables["audit_events"] == "p"

    for table, spec in EXPECTED_COLUMNS.items():
        rows = await conn.fetch(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid) AS default FROM pg_attribute a"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum",
            f"public.{table}",
        )
        actual = [(r["attname"], r["type"], r["attnotnull"], r["default"]) for r in rows]
        assert actual == parse_columns(spec), table


async def test_01_constraints_names_fk_targets_actions_and_checks(
    conn: asyncpg.Connection,
) -> None:
    actual = await real_constraints(conn)
    assert set(actual) == set(EXPECTED_CONSTRAINTS)

    checks: dict[str, tuple[str, str]] = {}
    for name, (table, (kind, definition)) in EXPECTED_CONSTRAINTS.items():
        real_table, real_kind, real_def = actual[name]
        assert (real_table, real_kind) == (table, kind), name
        if kind == CHECK:
            checks[name] = (table, definition)
        else:
            assert real_def == definition, name

    # CHECK expressions: let PostgreSQL normalise the spec's text the same way.
    tx = await _in_scratch_transaction(conn, (table for table, _ in checks.values()))
    try:
        for name, (table, expression) in checks.items():
            await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({expression})")
            assert actual[name][2] == await _temp_check_def(conn, table, name), name
    finally:
        await tx.rollback()


async def test_01_indexes_names_columns_and_partial_predicates(conn: asyncpg.Connection) -> None:
    actual = await real_index_defs(conn)
    constraint_indexes = {
        name for name, (_, (kind, _)) in EXPECTED_CONSTRAINTS.items() if kind in (PK, UNIQUE)
    }
    assert set(actual) == set(EXPECTED_INDEXES) | constraint_indexes

    ddl = {name: _index_ddl(name, spec) for name, spec in EXPECTED_INDEXES.items()}
    tx = await _in_scratch_transaction(conn, (table for table, _ in ddl.values()))
    try:
        for name, (_, statement) in ddl.items():
            await conn.execute(statement)
            assert actual[name] == await _temp_index_def(conn, name), name
    finally:
        await tx.rollback()

    # A few spelled out, so a reader sees what "normalised" means.
    assert actual["admin_tokens_token_sha256_active"] == (
        "CREATE UNIQUE INDEX admin_tokens_token_sha256_active ON admin_tokens"
        " USING btree (token_sha256) WHERE (revoked_at IS NULL)"
    )
    assert actual["step_up_challenges_live_binding_uniq"] == (
        "CREATE UNIQUE INDEX step_up_challenges_live_binding_uniq ON step_up_challenges"
        " USING btree (zone_id, principal_id, session_id, resource_set_hash)"
        " NULLS NOT DISTINCT WHERE (consumed_at IS NULL)"
    )
    assert actual["sessions_terminal_retention_idx"].endswith(
        "WHERE (status = ANY (ARRAY['terminated'::text, 'expired'::text]))"
    )


async def test_01_triggers_functions_and_sequence(conn: asyncpg.Connection) -> None:
    triggers = {
        r["tgname"]: (r["def"], r["tgenabled"])
        for r in await conn.fetch(
            "SELECT t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled::text FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal"
        )
    }
    assert triggers == {name: (definition, "O") for name, definition in EXPECTED_TRIGGERS.items()}

    functions = {
        r["proname"]: r
        for r in await conn.fetch(
            "SELECT p.proname, l.lanname, pg_get_function_result(p.oid) AS result,"
            " pg_get_function_arguments(p.oid) AS args, p.prosrc FROM pg_proc p"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.pronamespace = 'public'::regnamespace"
        )
    }
    assert set(functions) == set(EXPECTED_FUNCTIONS)
    for name, fragment in EXPECTED_FUNCTIONS.items():
        row = functions[name]
        assert (row["lanname"], row["result"], row["args"]) == ("plpgsql", "trigger", "")
        assert fragment in row["prosrc"]

    sequences = await conn.fetch(
        "SELECT sequencename, data_type::text, start_value, increment_by FROM pg_sequences"
        " WHERE schemaname = 'public'"
    )
    assert [tuple(r.values()) for r in sequences] == [
        ("audit_ingest_alerts_id_seq", "bigint", 1, 1)
    ]
    owner = await conn.fetchval("SELECT pg_get_serial_sequence('audit_ingest_alerts', 'id')")
    assert owner == "public.audit_ingest_alerts_id_seq"
    first = await conn.fetchval(
        "INSERT INTO audit_ingest_alerts (event_id, zone_id, kind)"
        " VALUES ('e', 'z', 'content_mismatch_on_replay') RETURNING id"
    )
    assert isinstance(first, int)


# ---------------------------------------------------------------------------------------
# §5.2 — idempotent, and a no-op on a database the platform's baseline created
# ---------------------------------------------------------------------------------------


async def test_02_migrate_twice_is_a_noop(migrated: MigratedDatabase) -> None:
    before = await catalog_snapshot(migrated.dsn)
    await upgrade_head(migrated.dsn)
    assert await current_revision(migrated.dsn) == HEAD
    assert await catalog_snapshot(migrated.dsn) == before


async def test_02_platform_baseline_gets_only_the_caracal_api_additions(
    migrated: MigratedDatabase, scratch_db: tuple[str, str]
) -> None:
    _, dsn = scratch_db
    assert await current_revision(dsn) is None

    # The platform's baseline: the §2 objects, with no record of our revisions.
    await run_alembic(dsn, lambda config: command.upgrade(config, "0001_baseline"))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE alembic_version")
        zone_id = await make_zone(conn)
    finally:
        await conn.close()
    baseline = await catalog_snapshot(dsn)

    await upgrade_head(dsn)

    assert await current_revision(dsn) == HEAD
    after = await catalog_snapshot(dsn)
    assert baseline <= after, "revision 0001 changed an existing object"
    added = after - baseline
    assert added
    # Besides §3, only Alembic's own bookkeeping table (dropped above) came back.
    for fact in added:
        assert any(name in fact for name in (*SECTION_3_OBJECTS, "alembic_version")), fact
    assert after == await catalog_snapshot(migrated.dsn)

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM zones WHERE id = $1", zone_id) == 1
    finally:
        await conn.close()


async def test_02_stamped_baseline_upgrades_with_0002(
    migrated: MigratedDatabase, scratch_db: tuple[str, str]
) -> None:
    _, dsn = scratch_db
    await run_alembic(dsn, lambda config: command.upgrade(config, "0001_baseline"))
    assert await current_revision(dsn) == "0001_baseline"
    await upgrade_head(dsn)
    assert await current_revision(dsn) == HEAD
    assert await catalog_snapshot(dsn) == await catalog_snapshot(migrated.dsn)


async def test_02_concurrent_migrations_run_one_after_the_other(
    migrated: MigratedDatabase, scratch_db: tuple[str, str]
) -> None:
    _, dsn = scratch_db
    # Without the advisory lock, concurrent CREATE ... IF NOT EXISTS statements collide
    # on the catalogs' unique indexes.
    await asyncio.gather(*(upgrade_head(dsn) for _ in range(3)))
    assert await current_revision(dsn) == HEAD
    assert await catalog_snapshot(dsn) == await catalog_snapshot(migrated.dsn)


async def test_02_month_already_in_default_partition_is_skipped(
    scratch_db: tuple[str, str],
) -> None:
    # A platform database migrated long ago may hold rows of a window month in the default
    # partition; PostgreSQL refuses that partition, so 0001 must skip it, not fail.
    _, dsn = scratch_db
    await run_alembic(dsn, lambda config: command.upgrade(config, "0001_baseline"))
    window = audit_partition_window(datetime.now(UTC))
    skipped = window[2]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE {skipped.name}")
        await conn.execute("DROP TABLE alembic_version")
        await conn.execute(
            "INSERT INTO audit_events (id, zone_id, event_type, occurred_at)"
            " VALUES ('e1', 'z', 't', $1::text::timestamptz)",
            skipped.lower,
        )
    finally:
        await conn.close()

    await upgrade_head(dsn)

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass($1)", skipped.name) is None
        tx = conn.transaction()
        await tx.start()
        try:
            present = [p[0] for p in await monthly_partitions(conn)]
        finally:
            await tx.rollback()
        assert present == [p.name for p in window if p is not skipped]
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------
# §5.3 — audit_events partitioning
# ---------------------------------------------------------------------------------------


async def test_03_audit_events_partitions(
    conn: asyncpg.Connection, migrated: MigratedDatabase
) -> None:
    assert await conn.fetchval("SELECT pg_get_partkeydef('audit_events'::regclass)") == (
        "RANGE (occurred_at)"
    )
    default_bound = await conn.fetchval(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c"
        " JOIN pg_inherits i ON i.inhrelid = c.oid"
        " WHERE i.inhparent = 'audit_events'::regclass AND c.relname = 'audit_events_default'"
    )
    assert default_bound == "DEFAULT"
    monthly = await monthly_partitions(conn)
    assert monthly in expected_partitions(migrated)

    # Every partition carries the parent's indexes (created once on the parent).
    for index in ("audit_events_pkey", "audit_events_zone_chain", "audit_events_session_idx"):
        attached = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass", index
        )
        assert attached == 1 + len(monthly), index

    async def insert(occurred_at: datetime) -> str:
        return await conn.fetchval(
            "INSERT INTO audit_events (id, zone_id, event_type, occurred_at)"
            " VALUES ($1, 'z', 'decision', $2) RETURNING tableoid::regclass::text",
            new_id(),
            occurred_at,
        )

    now = datetime.now(UTC)
    assert await insert(now.replace(year=now.year + 5, day=1)) == "audit_events_default"
    assert await insert(now) == audit_partition_window(now)[0].name


# ---------------------------------------------------------------------------------------
# §5.4 — policy versions are immutable
# ---------------------------------------------------------------------------------------


async def test_04_policy_versions_and_set_versions_are_immutable(
    conn: asyncpg.Connection,
) -> None:
    zone_id = await make_zone(conn)
    policy_id = await make_named(conn, "policies", zone_id, "p")
    version_id = new_id()
    await conn.execute(
        "INSERT INTO policy_versions (id, policy_id, version, content, content_sha256,"
        " schema_version, created_by) VALUES ($1, $2, 1, 'package x', 'ab', '2026-05-20', 't')",
        version_id,
        policy_id,
    )
    set_version_id = await make_policy_set_version(
        conn, await make_named(conn, "policy_sets", zone_id, "s")
    )

    for statement, row_id in (
        ("UPDATE policy_versions SET content = 'changed' WHERE id = $1", version_id),
        ("UPDATE policy_versions SET archived_at = now() WHERE id = $1", version_id),
        ("DELETE FROM policy_versions WHERE id = $1", version_id),
        ("UPDATE policy_set_versions SET manifest_json = '[{}]' WHERE id = $1", set_version_id),
        ("DELETE FROM policy_set_versions WHERE id = $1", set_version_id),
    ):
        with pytest.raises(asyncpg.RaiseError, match=r"^policy_versions rows are immutable$"):
            async with conn.transaction():
                await conn.execute(statement, row_id)

    locked = await conn.fetchval(
        "SELECT id FROM policy_versions WHERE id = $1 FOR SHARE", version_id
    )
    assert locked == version_id


# ---------------------------------------------------------------------------------------
# §5.5–§5.9 — uniqueness and CHECK rules
# ---------------------------------------------------------------------------------------


async def test_05_managed_application_names_unique_ignoring_case(
    conn: asyncpg.Connection,
) -> None:
    zone_id = await make_zone(conn)
    first = await make_application(conn, zone_id, "Billing Bot")
    error = await violation(
        conn,
        "INSERT INTO applications (id, zone_id, name, registration_method)"
        " VALUES ($1, $2, 'billing BOT', 'managed')",
        new_id(),
        zone_id,
    )
    assert error.constraint_name == "applications_zone_managed_name_active_uidx"

    # DCR clients may share a managed application's name.
    later = datetime.now(UTC) + timedelta(days=1)
    await make_application(conn, zone_id, "billing bot", method="dcr", expires_at=later)
    # Another zone is another namespace.
    await make_application(conn, await make_zone(conn), "Billing Bot")
    # Archiving frees the name.
    await conn.execute("UPDATE applications SET archived_at = now() WHERE id = $1", first)
    await make_application(conn, zone_id, "BILLING BOT")


async def test_05_migration_names_duplicate_application_names(
    scratch_db: tuple[str, str],
) -> None:
    _, dsn = scratch_db
    await run_alembic(dsn, lambda config: command.upgrade(config, "0001_baseline"))
    conn = await asyncpg.connect(dsn)
    try:
        zone_id = await make_zone(conn)
        await make_application(conn, zone_id, "Dup")
        await make_application(conn, zone_id, "dUP")
    finally:
        await conn.close()

    with pytest.raises(Exception, match="applications_zone_managed_name_active_uidx") as caught:
        await upgrade_head(dsn)
    message = str(caught.value)
    assert "1 group(s)" in message
    assert f"zone {zone_id}, name 'dup'" in message
    assert await current_revision(dsn) == "0001_baseline"


@pytest.mark.parametrize(
    ("table", "index"),
    [
        ("providers", "providers_zone_identifier_active_uidx"),
        ("resources", "resources_zone_id_identifier_key"),
        ("policies", "policies_zone_id_name_key"),
        ("policy_sets", "policy_sets_zone_id_name_key"),
    ],
)
async def test_06_live_identifiers_and_names_unique_per_zone(
    conn: asyncpg.Connection, table: str, index: str
) -> None:
    zone_id = await make_zone(conn)
    provider_id = await make_provider(conn, zone_id)

    async def insert(key: str) -> str:
        if table == "providers":
            return await make_provider(conn, zone_id, key)
        if table == "resources":
            return await make_resource(conn, zone_id, provider_id, key)
        return await make_named(conn, table, zone_id, key)

    first = await insert("same")
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        async with conn.transaction():
            await insert("same")
    assert caught.value.constraint_name == index

    await conn.execute(f"UPDATE {table} SET archived_at = now() WHERE id = $1", first)
    await insert("same")


async def test_07_one_active_binding_per_zone(conn: asyncpg.Connection) -> None:
    zone_id = await make_zone(conn)
    bindings = []
    for name in ("a", "b"):
        set_id = await make_named(conn, "policy_sets", zone_id, name)
        bindings.append((set_id, await make_policy_set_version(conn, set_id)))
    insert = (
        "INSERT INTO policy_set_bindings (zone_id, policy_set_id, active_version_id)"
        " VALUES ($1, $2, $3)"
    )
    await conn.execute(insert, zone_id, *bindings[0])
    error = await violation(conn, insert, zone_id, *bindings[1])
    assert error.constraint_name == "policy_set_bindings_one_active_per_zone"
    # An inactive binding of the other set is fine.
    await conn.execute(insert, zone_id, bindings[1][0], None)


async def test_08_admin_token_digest_and_scope_rules(conn: asyncpg.Connection) -> None:
    digest = os.urandom(32)
    insert = (
        "INSERT INTO admin_tokens (id, name, token_sha256, scope, zone_id, created_by)"
        " VALUES ($1, 'bootstrap', $2, $3, $4, 'env-bootstrap')"
    )
    await conn.execute(insert, new_id(), digest, "global", None)
    error = await violation(conn, insert, new_id(), digest, "global", None)
    assert error.constraint_name == "admin_tokens_token_sha256_active"

    await conn.execute("UPDATE admin_tokens SET revoked_at = now() WHERE token_sha256 = $1", digest)
    await conn.execute(insert, new_id(), digest, "global", None)

    error = await violation(conn, insert, new_id(), os.urandom(32), "zone", None)
    assert error.constraint_name == "admin_token_scope_zone_pair"
    error = await violation(conn, insert, new_id(), os.urandom(32), "global", await make_zone(conn))
    assert error.constraint_name == "admin_token_scope_zone_pair"


async def test_09_dcr_application_requires_expires_at(conn: asyncpg.Connection) -> None:
    error = await violation(
        conn,
        "INSERT INTO applications (id, zone_id, name, registration_method)"
        " VALUES ($1, $2, 'client', 'dcr')",
        new_id(),
        await make_zone(conn),
    )
    assert error.constraint_name == "applications_dcr_expires_at_required"


# ---------------------------------------------------------------------------------------
# §5.10 — outbox wake-up notifications
# ---------------------------------------------------------------------------------------


async def test_10_outbox_insert_notifies_once_at_commit_and_never_on_rollback(
    migrated: MigratedDatabase,
) -> None:
    listener = await asyncpg.connect(migrated.dsn)
    writer = await asyncpg.connect(migrated.dsn)
    received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def on_notify(_conn: Any, _pid: int, channel: str, payload: str) -> None:
        received.put_nowait((channel, payload))

    # Two statements, one of them multi-row: PostgreSQL folds the notifications.
    insert_two = (
        "INSERT INTO event_outbox (id, stream_name, payload_json)"
        " VALUES ($1, 's', '{}'), ($2, 's', '{}')"
    )
    insert_one = "INSERT INTO event_outbox (id, stream_name, payload_json) VALUES ($1, 's', '{}')"
    ids = [new_id() for _ in range(3)]
    await listener.add_listener("caracal_event_outbox", on_notify)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute(insert_two, ids[0], ids[1])
        await writer.execute(insert_one, ids[2])
        await tx.rollback()
        await asyncio.sleep(0.5)
        assert received.empty()

        async with writer.transaction():
            await writer.execute(insert_two, ids[0], ids[1])
            await writer.execute(insert_one, ids[2])
            await asyncio.sleep(0.3)
            assert received.empty(), "notified before commit"
        assert await asyncio.wait_for(received.get(), timeout=5) == ("caracal_event_outbox", "")
        await asyncio.sleep(0.5)
        assert received.empty(), "more than one notification"
    finally:
        await listener.remove_listener("caracal_event_outbox", on_notify)
        await writer.execute("DELETE FROM event_outbox WHERE id = ANY($1::text[])", ids)
        await listener.close()
        await writer.close()


# ---------------------------------------------------------------------------------------
# §5.11 — zone-consistent composite foreign keys
# ---------------------------------------------------------------------------------------


async def test_11_cross_zone_references_are_refused(conn: asyncpg.Connection) -> None:
    zone_a, zone_b = await make_zone(conn), await make_zone(conn)
    provider_b = await make_provider(conn, zone_b)
    error = await violation(
        conn,
        "INSERT INTO resources (id, zone_id, name, identifier, credential_provider_id)"
        " VALUES ($1, $2, 'r', 'r', $3)",
        new_id(),
        zone_a,
        provider_b,
    )
    assert error.constraint_name == "resources_zone_provider_fk"

    resource_a = await make_resource(conn, zone_a, await make_provider(conn, zone_a))
    application_b = await make_application(conn, zone_b)
    error = await violation(
        conn,
        "INSERT INTO delegated_grants (id, zone_id, application_id, user_id, resource_id, scopes)"
        " VALUES ($1, $2, $3, 'user', $4, '{read}')",
        new_id(),
        zone_a,
        application_b,
        resource_a,
    )
    assert error.constraint_name == "delegated_grants_zone_application_fk"


# ---------------------------------------------------------------------------------------
# §5.12 — admin audit chain positions
# ---------------------------------------------------------------------------------------


async def _chain_pass(dsn: str, zone_id: str, batch: int) -> int:
    """The chainer's algorithm (foundation §13.5) reduced to the columns the schema guards."""
    conn = await asyncpg.connect(dsn)
    chained = 0
    try:
        while True:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", zone_id)
                head = await conn.fetchrow(
                    "SELECT chain_seq, content_sha256 FROM admin_audit_events"
                    " WHERE zone_id = $1 AND chain_seq IS NOT NULL"
                    " ORDER BY chain_seq DESC LIMIT 1",
                    zone_id,
                )
                seq, prev = (head["chain_seq"], head["content_sha256"]) if head else (0, "")
                rows = await conn.fetch(
                    "SELECT id, content_sha256 FROM admin_audit_events"
                    " WHERE zone_id = $1 AND chain_seq IS NULL ORDER BY occurred_at, id"
                    " LIMIT $2 FOR UPDATE",
                    zone_id,
                    batch,
                )
                ids, seqs, prevs = [], [], []
                for row in rows:
                    seq += 1
                    ids.append(row["id"])
                    seqs.append(seq)
                    prevs.append(prev or None)
                    prev = row["content_sha256"]
                status = await conn.execute(
                    "UPDATE admin_audit_events a SET chain_seq = u.seq,"
                    " prev_content_sha256 = u.prev"
                    " FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(id, seq, prev)"
                    " WHERE a.id = u.id AND a.chain_seq IS NULL",
                    ids,
                    seqs,
                    prevs,
                )
                chained += int(status.split()[-1])
            if len(rows) < batch:
                return chained
            await asyncio.sleep(0)
    finally:
        await conn.close()


async def test_12_chain_positions_are_taken_once(migrated: MigratedDatabase) -> None:
    zone_id = new_id()
    rows = 60
    conn = await asyncpg.connect(migrated.dsn)
    try:
        await conn.executemany(
            "INSERT INTO admin_audit_events (id, request_id, action, method, path, zone_id,"
            " status_code, content_sha256, occurred_at)"
            " VALUES ($1, 'req', 'zone.updated', 'PATCH', '/v1/zones/z', $2, 200, $1,"
            " now() - make_interval(secs => $3))",
            [(f"{zone_id}-{i:03d}", zone_id, rows - i) for i in range(rows)],
        )
        results = await asyncio.gather(
            *(_chain_pass(migrated.dsn, zone_id, batch=7) for _ in range(3))
        )
        assert sum(results) == rows

        chain = await conn.fetch(
            "SELECT id, chain_seq, content_sha256, prev_content_sha256 FROM admin_audit_events"
            " WHERE zone_id = $1 ORDER BY chain_seq",
            zone_id,
        )
        assert [r["chain_seq"] for r in chain] == list(range(1, rows + 1))
        assert [r["id"] for r in chain] == [f"{zone_id}-{i:03d}" for i in range(rows)]
        assert [r["prev_content_sha256"] for r in chain[1:]] == [
            r["content_sha256"] for r in chain[:-1]
        ]

        # The chainer's guarded UPDATE never touches a chained row again.
        status = await conn.execute(
            "UPDATE admin_audit_events SET chain_seq = 999, chain_hmac = 'x'"
            " WHERE id = $1 AND chain_seq IS NULL",
            chain[0]["id"],
        )
        assert status == "UPDATE 0"

        # A position is unique per chain, including the global (NULL zone) chain.
        async with conn.transaction():
            extra = (
                "INSERT INTO admin_audit_events (id, request_id, action, method, path, zone_id,"
                " status_code, chain_seq) VALUES ($1, 'req', 'a', 'GET', '/', $2, 200, $3)"
            )
            error = await violation(conn, extra, new_id(), zone_id, 1)
            assert error.constraint_name == "admin_audit_events_chain_seq_uidx"
            await conn.execute(extra, new_id(), None, -1)
            error = await violation(conn, extra, new_id(), None, -1)
            assert error.constraint_name == "admin_audit_events_chain_seq_uidx"
            await conn.execute("DELETE FROM admin_audit_events WHERE chain_seq = -1")
    finally:
        await conn.execute("DELETE FROM admin_audit_events WHERE zone_id = $1", zone_id)
        await conn.close()


# ---------------------------------------------------------------------------------------
# §5.13 — zone deletion
# ---------------------------------------------------------------------------------------


async def test_13_zone_delete_cascades_to_tokens_and_challenges(
    conn: asyncpg.Connection,
) -> None:
    zone_id = await make_zone(conn)
    await conn.execute(
        "INSERT INTO admin_tokens (id, name, token_sha256, scope, zone_id, created_by)"
        " VALUES ($1, 't', $2, 'zone', $3, 'cli')",
        new_id(),
        os.urandom(32),
        zone_id,
    )
    await conn.execute(
        "INSERT INTO step_up_challenges (id, zone_id, challenge_type, expires_at)"
        " VALUES ($1, $2, 'human_approval', now() + interval '5 minutes')",
        new_id(),
        zone_id,
    )
    await conn.execute("DELETE FROM zones WHERE id = $1", zone_id)
    for table in ("admin_tokens", "step_up_challenges"):
        count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE zone_id = $1", zone_id)
        assert count == 0, table


@pytest.mark.parametrize(
    ("child", "constraint"),
    [
        ("applications", "applications_zone_id_fkey"),
        ("providers", "providers_zone_id_fkey"),
        ("secret_store", "secret_store_zone_id_fkey"),
        ("policies", "policies_zone_id_fkey"),
        ("policy_sets", "policy_sets_zone_id_fkey"),
        ("authority_records", "authority_records_zone_id_fkey"),
    ],
)
async def test_13_zone_delete_refused_while_other_children_exist(
    conn: asyncpg.Connection, child: str, constraint: str
) -> None:
    zone_id = await make_zone(conn)
    if child == "applications":
        await make_application(conn, zone_id)
    elif child == "providers":
        await make_provider(conn, zone_id)
    elif child == "secret_store":
        await conn.execute(
            "INSERT INTO secret_store (ref, zone_id, envelope) VALUES ($1, $2, '\\x00')",
            new_id(),
            zone_id,
        )
    elif child == "authority_records":
        await conn.execute(
            "INSERT INTO authority_records (id, zone_id, session_type, expires_at,"
            " authenticated_at) VALUES ($1, $2, 'user', now() + interval '1 hour', now())",
            new_id(),
            zone_id,
        )
    else:
        await make_named(conn, child, zone_id, "n")
    error = await violation(conn, "DELETE FROM zones WHERE id = $1", zone_id)
    assert isinstance(error, asyncpg.ForeignKeyViolationError)
    assert error.constraint_name == constraint


# ---------------------------------------------------------------------------------------
# §5.14 — partition bounds at 00:00 UTC whatever the server's TimeZone
# ---------------------------------------------------------------------------------------


async def test_14_partition_bounds_are_midnight_utc_under_a_non_utc_timezone(
    conn: asyncpg.Connection, migrated: MigratedDatabase
) -> None:
    # The migration connected after the database's TimeZone was set, so it ran under it.
    assert await conn.fetchval("SELECT current_setting('TimeZone')") == SERVER_TIMEZONE

    monthly = await monthly_partitions(conn)
    assert monthly in expected_partitions(migrated)
    for name, lower, upper in monthly:
        assert re.fullmatch(r"audit_events_y\d{4}m\d{2}", name)
        assert lower.endswith("-01 00:00:00+00"), name
        assert upper.endswith("-01 00:00:00+00"), name

    # Rows at the edges land where UTC midnight says, whatever the session's zone.
    await conn.execute(f"SET LOCAL TimeZone = '{SERVER_TIMEZONE}'")
    previous = "audit_events_default"
    for name, lower, _ in monthly:
        placed = await conn.fetch(
            "INSERT INTO audit_events (id, zone_id, event_type, occurred_at) VALUES"
            " ($1, 'z', 't', $3::text::timestamptz - interval '1 microsecond'),"
            " ($2, 'z', 't', $3::text::timestamptz) RETURNING tableoid::regclass::text AS p",
            new_id(),
            new_id(),
            lower,
        )
        assert [r["p"] for r in placed] == [previous, name]
        previous = name


def test_14_migration_window_matches_the_shared_helper() -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    baseline = script.get_revision("0001_baseline")
    assert baseline is not None
    frozen = baseline.module.month_partitions
    for month in range(1, 13):
        moment = datetime(2027, month, 28, 23, 59, tzinfo=UTC)
        assert frozen(moment, 4) == [tuple(p) for p in audit_partition_window(moment)]
    # A moment given in another zone is read in UTC: 2027-02-01 05:00+14 is still January.
    plus14 = datetime.fromisoformat("2027-02-01T05:00:00+14:00")
    assert audit_partition_window(plus14)[0].name == "audit_events_y2027m01"
    assert audit_partition_window(plus14)[3] == (
        "audit_events_y2027m04",
        "2027-04-01 00:00:00+00",
        "2027-05-01 00:00:00+00",
    )


# ---------------------------------------------------------------------------------------
# §5.15 — the invalidation index serves activation status and outbox retention
# ---------------------------------------------------------------------------------------


async def test_15_invalidate_set_index_shape_and_use(conn: asyncpg.Connection) -> None:
    definition = await conn.fetchval(
        "SELECT pg_get_indexdef('event_outbox_invalidate_set_idx'::regclass)"
    )
    assert definition == (
        "CREATE INDEX event_outbox_invalidate_set_idx ON public.event_outbox USING btree"
        " (((payload_json ->> 'zone_id'::text)), ((payload_json ->> 'policy_set_id'::text)),"
        " created_at DESC, id DESC)"
        " WHERE (stream_name = 'caracal.policy.invalidate'::text)"
    )

    await conn.executemany(
        "INSERT INTO event_outbox (id, stream_name, payload_json, dispatched_at, created_at)"
        " VALUES ($1, $2, $3::jsonb, now() - interval '40 days', now() - interval '40 days')",
        [
            (
                new_id(),
                "caracal.policy.invalidate" if i % 2 else "caracal.zone.updated",
                f'{{"zone_id": "z{i % 5}", "policy_set_id": "s{i % 3}"}}',
            )
            for i in range(200)
        ],
    )
    await conn.execute("ANALYZE event_outbox")
    # Tiny tables favour sequential scans; the question is whether the index is usable.
    await conn.execute("SET LOCAL enable_seqscan = off")

    async def plan(query: str) -> str:
        rows = await conn.fetch(f"EXPLAIN {query}")
        return "\n".join(r[0] for r in rows)

    activation_status = await plan(
        "SELECT id FROM event_outbox WHERE stream_name = 'caracal.policy.invalidate'"
        " AND payload_json->>'zone_id' = 'z1' AND payload_json->>'policy_set_id' = 's1'"
        " ORDER BY created_at DESC, id DESC LIMIT 1"
    )
    assert "event_outbox_invalidate_set_idx" in activation_status
    assert "Sort" not in activation_status

    retention = await plan(
        "SELECT o.id FROM event_outbox o"
        " WHERE o.dispatched_at < now() - make_interval(days => 30)"
        " AND NOT (o.stream_name = 'caracal.policy.invalidate' AND NOT EXISTS ("
        " SELECT 1 FROM event_outbox n WHERE n.stream_name = 'caracal.policy.invalidate'"
        " AND n.payload_json->>'zone_id' = o.payload_json->>'zone_id'"
        " AND n.payload_json->>'policy_set_id' = o.payload_json->>'policy_set_id'"
        " AND (n.created_at, n.id) > (o.created_at, o.id)))"
        " LIMIT 1000 FOR UPDATE SKIP LOCKED"
    )
    assert "event_outbox_invalidate_set_idx" in retention


# ---------------------------------------------------------------------------------------
# Models and migrations agree
# ---------------------------------------------------------------------------------------


async def test_alembic_check_command_line(migrated: MigratedDatabase, tmp_path: Path) -> None:
    """`alembic check` as CI runs it: the CLI, alembic.ini, DATABASE_URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "-c",
        str(PROJECT_ROOT / "alembic.ini"),
        "check",
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": migrated.dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text
    assert "No new upgrade operations detected" in text


async def test_alembic_check_on_a_shared_connection(migrated: MigratedDatabase) -> None:
    await run_alembic(migrated.dsn, command.check)


async def test_models_match_what_alembic_does_not_compare(conn: asyncpg.Connection) -> None:
    """Partial-index predicates, index methods and CHECK expressions of the models.

    Each model index and CHECK is compiled to DDL, applied to a temporary copy of its table
    and deparsed by PostgreSQL next to the migrated original.
    """
    dialect = postgresql.dialect()
    indexes = {
        str(index.name): (model_table.name, str(CreateIndex(index).compile(dialect=dialect)))
        for model_table in Base.metadata.tables.values()
        for index in model_table.indexes
    }
    checks = {
        str(check.name): (model_table.name, str(AddConstraint(check).compile(dialect=dialect)))
        for model_table in Base.metadata.tables.values()
        for check in model_table.constraints
        if isinstance(check, CheckConstraint)
    }
    named = {
        str(constraint.name)
        for model_table in Base.metadata.tables.values()
        for constraint in model_table.constraints
    }
    assert set(indexes) == set(EXPECTED_INDEXES)
    assert named == set(EXPECTED_CONSTRAINTS)

    real_indexes = await real_index_defs(conn)
    real_checks = await real_constraints(conn)
    tx = await _in_scratch_transaction(
        conn, [table for table, _ in (*indexes.values(), *checks.values())]
    )
    try:
        for name, (_, statement) in indexes.items():
            await conn.execute(statement)
            assert await _temp_index_def(conn, name) == real_indexes[name], name
        for name, (table_name, statement) in checks.items():
            await conn.execute(statement)
            assert await _temp_check_def(conn, table_name, name) == real_checks[name][2]
    finally:
        await tx.rollback()


async def test_every_model_reads_and_core_inserts_work(migrated: MigratedDatabase) -> None:
    engine = create_async_engine(sqlalchemy_url(migrated.dsn), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            for mapper in Base.registry.mappers:
                await connection.execute(select(mapper.class_).limit(1))
            # The id comes from audit_ingest_alerts_id_seq, as for raw SQL inserts.
            alert_id = await connection.scalar(
                insert(AuditIngestAlert)
                .values(event_id="e", zone_id="z", kind="content_mismatch_on_replay")
                .returning(AuditIngestAlert.id)
            )
            assert isinstance(alert_id, int)
            await connection.rollback()
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_back(
    migrated: MigratedDatabase, scratch_db: tuple[str, str]
) -> None:
    _, dsn = scratch_db
    await upgrade_head(dsn)
    await run_alembic(dsn, lambda config: command.downgrade(config, "base"))
    left = {fact for fact in await catalog_snapshot(dsn) if "alembic_version" not in fact}
    assert left == set()
    await upgrade_head(dsn)
    assert await catalog_snapshot(dsn) == await catalog_snapshot(migrated.dsn)


def test_sqlalchemy_url_normalisation() -> None:
    cases = {
        "postgres://u:p@h:5433/db": "postgresql+asyncpg://u:p@h:5433/db",
        "postgresql://u@/db?host=/run/pg": "postgresql+asyncpg://u@/db?host=%2Frun%2Fpg",
        "postgresql+psycopg://u@h/db?sslmode=require": "postgresql+asyncpg://u@h/db?ssl=require",
    }
    for dsn, expected in cases.items():
        assert sqlalchemy_url(dsn).render_as_string(hide_password=False) == expected
    with pytest.raises(ValueError, match="not a PostgreSQL DSN"):
        sqlalchemy_url("mysql://u@h/db")
