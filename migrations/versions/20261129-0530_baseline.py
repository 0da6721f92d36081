"""Baseline: the shared Caracal tables (schema.md §2).

Every statement uses IF NOT EXISTS / OR REPLACE with constraints inline, so on a database
that the platform's own baseline already created this revision changes nothing and only
records itself in alembic_version.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-29 05:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op

revision: str = "0001_baseline"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Months of audit_events partitions created up front: the current one and the next three.
# The audit ingest keeps the same window current afterwards (events.md §6.4).
AUDIT_PARTITION_MONTHS = 4

TABLES: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS zones (
        id text NOT NULL,
        name text NOT NULL,
        slug text NOT NULL,
        dcr_enabled boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        archived_at timestamptz,
        owner_account_id text,
        operator_coauthor_badge boolean NOT NULL DEFAULT true,
        operator_governed boolean NOT NULL DEFAULT false,
        created_by text,
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT zones_pkey PRIMARY KEY (id),
        CONSTRAINT zones_slug_key UNIQUE (slug)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS admin_tokens (
        id text NOT NULL,
        name text NOT NULL,
        token_sha256 bytea NOT NULL,
        scope text NOT NULL,
        zone_id text,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz,
        token_hash text,
        capability text NOT NULL DEFAULT 'write',
        CONSTRAINT admin_tokens_pkey PRIMARY KEY (id),
        CONSTRAINT admin_tokens_zone_id_fkey FOREIGN KEY (zone_id)
            REFERENCES zones (id) ON DELETE CASCADE,
        CONSTRAINT admin_tokens_scope_check CHECK (scope IN ('global', 'zone')),
        CONSTRAINT admin_tokens_capability_check
            CHECK (capability IN ('read', 'write', 'approve')),
        CONSTRAINT admin_token_scope_zone_pair CHECK (
            (scope = 'global' AND zone_id IS NULL) OR (scope = 'zone' AND zone_id IS NOT NULL)
        )
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS admin_audit_events (
        id text NOT NULL,
        request_id text NOT NULL,
        actor_id text,
        actor_name text,
        actor_scope text,
        action text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        zone_id text,
        entity_type text,
        entity_id text,
        status_code integer NOT NULL,
        payload_json jsonb,
        occurred_at timestamptz NOT NULL DEFAULT now(),
        content_sha256 text,
        prev_content_sha256 text,
        chain_hmac text,
        chain_seq bigint,
        CONSTRAINT admin_audit_events_pkey PRIMARY KEY (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS applications (
        id text NOT NULL,
        zone_id text NOT NULL,
        name text NOT NULL,
        registration_method text NOT NULL,
        credential_type text NOT NULL DEFAULT 'token',
        client_secret_hash text,
        traits text[] NOT NULL DEFAULT '{}',
        expires_at timestamptz,
        archived_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text,
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        updated_at timestamptz,
        CONSTRAINT applications_pkey PRIMARY KEY (id),
        CONSTRAINT applications_zone_id_id_unique UNIQUE (zone_id, id),
        CONSTRAINT applications_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id),
        CONSTRAINT applications_registration_method_check
            CHECK (registration_method IN ('managed', 'dcr')),
        CONSTRAINT applications_credential_type_check CHECK (credential_type = 'token'),
        CONSTRAINT applications_dcr_expires_at_required
            CHECK (registration_method <> 'dcr' OR expires_at IS NOT NULL)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS providers (
        id text NOT NULL,
        zone_id text NOT NULL,
        name text NOT NULL,
        identifier text NOT NULL,
        config_json jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        archived_at timestamptz,
        secret_config_keys text[] NOT NULL DEFAULT '{}',
        provider_kind text NOT NULL,
        connectivity_failed_at timestamptz,
        created_by text,
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT providers_pkey PRIMARY KEY (id),
        CONSTRAINT providers_zone_id_id_unique UNIQUE (zone_id, id),
        CONSTRAINT providers_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id),
        CONSTRAINT providers_provider_kind_check CHECK (provider_kind IN (
            'none', 'caracal_mandate', 'oauth2_authorization_code',
            'oauth2_client_credentials', 'api_key', 'bearer_token', 'http_basic'
        ))
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS resources (
        id text NOT NULL,
        zone_id text NOT NULL,
        name text NOT NULL,
        identifier text NOT NULL,
        upstream_url text,
        credential_provider_id text NOT NULL,
        scopes text[] NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        archived_at timestamptz,
        operations jsonb NOT NULL DEFAULT '[]',
        operation_enforcement text NOT NULL DEFAULT 'transport_uniform',
        created_by text,
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT resources_pkey PRIMARY KEY (id),
        CONSTRAINT resources_zone_id_id_unique UNIQUE (zone_id, id),
        CONSTRAINT resources_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id),
        CONSTRAINT resources_credential_provider_id_fkey FOREIGN KEY (credential_provider_id)
            REFERENCES providers (id),
        CONSTRAINT resources_zone_provider_fk FOREIGN KEY (zone_id, credential_provider_id)
            REFERENCES providers (zone_id, id),
        CONSTRAINT resources_operation_enforcement_check
            CHECK (operation_enforcement IN ('enforced', 'transport_uniform'))
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS delegated_grants (
        id text NOT NULL,
        zone_id text NOT NULL,
        application_id text,
        user_id text NOT NULL,
        resource_id text NOT NULL,
        scopes text[] NOT NULL,
        status text NOT NULL DEFAULT 'active',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        created_by text,
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT delegated_grants_pkey PRIMARY KEY (id),
        CONSTRAINT delegated_grants_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id),
        CONSTRAINT delegated_grants_application_id_fkey FOREIGN KEY (application_id)
            REFERENCES applications (id),
        CONSTRAINT delegated_grants_zone_application_fk FOREIGN KEY (zone_id, application_id)
            REFERENCES applications (zone_id, id),
        CONSTRAINT delegated_grants_resource_id_fkey FOREIGN KEY (resource_id)
            REFERENCES resources (id),
        CONSTRAINT delegated_grants_zone_resource_fk FOREIGN KEY (zone_id, resource_id)
            REFERENCES resources (zone_id, id),
        CONSTRAINT delegated_grants_status_check
            CHECK (status IN ('active', 'revoked', 'expired'))
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS provider_connections (
        id text NOT NULL,
        zone_id text NOT NULL,
        subject_id text NOT NULL,
        provider_id text NOT NULL,
        status text NOT NULL DEFAULT 'active',
        access_token_ct bytea,
        refresh_token_ct bytea,
        expires_at timestamptz,
        refreshed_at timestamptz,
        refresh_token_version integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT provider_connections_pkey PRIMARY KEY (id),
        CONSTRAINT provider_connections_zone_provider_fk FOREIGN KEY (zone_id, provider_id)
            REFERENCES providers (zone_id, id),
        CONSTRAINT provider_connections_status_check
            CHECK (status IN ('active', 'revoked', 'expired'))
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS secret_store (
        ref text NOT NULL,
        zone_id text NOT NULL,
        envelope bytea NOT NULL,
        version integer NOT NULL DEFAULT 1,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT secret_store_pkey PRIMARY KEY (ref),
        CONSTRAINT secret_store_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policies (
        id text NOT NULL,
        zone_id text NOT NULL,
        name text NOT NULL,
        description text,
        archived_at timestamptz,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT policies_pkey PRIMARY KEY (id),
        CONSTRAINT policies_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policy_versions (
        id text NOT NULL,
        policy_id text NOT NULL,
        version integer NOT NULL,
        content text NOT NULL,
        content_sha256 text NOT NULL,
        schema_version text NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        archived_at timestamptz,
        created_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT policy_versions_pkey PRIMARY KEY (id),
        CONSTRAINT policy_versions_policy_id_fkey FOREIGN KEY (policy_id)
            REFERENCES policies (id),
        CONSTRAINT policy_versions_policy_id_version_key UNIQUE (policy_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policy_sets (
        id text NOT NULL,
        zone_id text NOT NULL,
        name text NOT NULL,
        description text,
        archived_at timestamptz,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        created_via_operator boolean NOT NULL DEFAULT false,
        updated_by text,
        updated_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT policy_sets_pkey PRIMARY KEY (id),
        CONSTRAINT policy_sets_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policy_set_versions (
        id text NOT NULL,
        policy_set_id text NOT NULL,
        version integer NOT NULL,
        manifest_json jsonb NOT NULL,
        manifest_sha256 text NOT NULL,
        schema_version text NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        archived_at timestamptz,
        created_via_operator boolean NOT NULL DEFAULT false,
        CONSTRAINT policy_set_versions_pkey PRIMARY KEY (id),
        CONSTRAINT policy_set_versions_policy_set_id_fkey FOREIGN KEY (policy_set_id)
            REFERENCES policy_sets (id),
        CONSTRAINT policy_set_versions_policy_set_id_version_key UNIQUE (policy_set_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policy_set_bindings (
        zone_id text NOT NULL,
        policy_set_id text NOT NULL,
        active_version_id text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT policy_set_bindings_pkey PRIMARY KEY (zone_id, policy_set_id),
        CONSTRAINT policy_set_bindings_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id),
        CONSTRAINT policy_set_bindings_policy_set_id_fkey FOREIGN KEY (policy_set_id)
            REFERENCES policy_sets (id),
        CONSTRAINT policy_set_bindings_active_version_id_fkey FOREIGN KEY (active_version_id)
            REFERENCES policy_set_versions (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS event_outbox (
        id text NOT NULL,
        stream_name text NOT NULL,
        payload_json jsonb NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        available_at timestamptz NOT NULL DEFAULT now(),
        locked_until timestamptz,
        locked_by text,
        last_error text,
        dispatched_at timestamptz,
        request_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT event_outbox_pkey PRIMARY KEY (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS step_up_challenges (
        id text NOT NULL,
        zone_id text NOT NULL,
        session_id text,
        challenge_type text NOT NULL,
        metadata_json jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        satisfied_at timestamptz,
        principal_id text,
        resource_set_hash bytea,
        consumed_at timestamptz,
        approver_subject_id text,
        application_id text,
        tier text,
        approver_class text NOT NULL DEFAULT 'operator',
        privacy_mode text NOT NULL DEFAULT 'identified',
        rejected_at timestamptz,
        decision_reason text,
        approver_session_id text,
        CONSTRAINT step_up_challenges_pkey PRIMARY KEY (id),
        CONSTRAINT step_up_challenges_zone_id_fkey FOREIGN KEY (zone_id)
            REFERENCES zones (id) ON DELETE CASCADE,
        CONSTRAINT step_up_challenges_application_id_fkey FOREIGN KEY (application_id)
            REFERENCES applications (id) ON DELETE CASCADE,
        CONSTRAINT step_up_challenges_challenge_type_check
            CHECK (challenge_type = 'human_approval'),
        CONSTRAINT step_up_challenges_approver_class_check
            CHECK (approver_class IN ('operator', 'subject', 'any')),
        CONSTRAINT step_up_challenges_privacy_mode_check
            CHECK (privacy_mode IN ('identified', 'pseudonymous', 'anonymous'))
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS authority_records (
        id text NOT NULL,
        zone_id text NOT NULL,
        session_type text NOT NULL,
        subject_id text,
        parent_id text,
        status text NOT NULL DEFAULT 'active',
        expires_at timestamptz NOT NULL,
        authenticated_at timestamptz NOT NULL,
        claims_json jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        revoked_reason text,
        CONSTRAINT authority_records_pkey PRIMARY KEY (id),
        CONSTRAINT authority_records_zone_id_id_unique UNIQUE (zone_id, id),
        CONSTRAINT authority_records_zone_id_fkey FOREIGN KEY (zone_id) REFERENCES zones (id),
        CONSTRAINT authority_records_parent_id_fkey FOREIGN KEY (parent_id)
            REFERENCES authority_records (id),
        CONSTRAINT authority_records_session_type_check
            CHECK (session_type IN ('user', 'application')),
        CONSTRAINT authority_records_status_check
            CHECK (status IN ('active', 'revoked', 'expired'))
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS sessions (
        id text NOT NULL,
        zone_id text NOT NULL,
        application_id text NOT NULL,
        parent_id text,
        subject_authority_record_id text NOT NULL,
        status text NOT NULL DEFAULT 'active',
        depth integer NOT NULL DEFAULT 0,
        labels text[] NOT NULL DEFAULT '{}',
        max_children integer NOT NULL DEFAULT 10,
        child_count integer NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL DEFAULT now(),
        last_active_at timestamptz NOT NULL DEFAULT now(),
        terminated_at timestamptz,
        ttl_seconds integer DEFAULT 3600,
        metadata_json jsonb,
        updated_at timestamptz NOT NULL DEFAULT now(),
        lifecycle text NOT NULL DEFAULT 'task',
        last_heartbeat_at timestamptz,
        heartbeat_deadline_at timestamptz,
        termination_reason text,
        lease_generation bigint NOT NULL DEFAULT 0,
        CONSTRAINT sessions_pkey PRIMARY KEY (id),
        CONSTRAINT sessions_zone_id_id_unique UNIQUE (zone_id, id),
        CONSTRAINT sessions_zone_application_fk FOREIGN KEY (zone_id, application_id)
            REFERENCES applications (zone_id, id),
        CONSTRAINT sessions_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES sessions (id),
        CONSTRAINT sessions_zone_parent_fk FOREIGN KEY (zone_id, parent_id)
            REFERENCES sessions (zone_id, id),
        CONSTRAINT sessions_zone_authority_record_fk
            FOREIGN KEY (zone_id, subject_authority_record_id)
            REFERENCES authority_records (zone_id, id),
        CONSTRAINT sessions_status_check
            CHECK (status IN ('active', 'suspended', 'terminated', 'expired')),
        CONSTRAINT sessions_lifecycle_check CHECK (lifecycle IN ('task', 'service')),
        CONSTRAINT sessions_lease_generation_check CHECK (lease_generation >= 0),
        CONSTRAINT sessions_terminal_fields_check CHECK (
            (status IN ('terminated', 'expired') AND terminated_at IS NOT NULL)
            OR (status IN ('active', 'suspended') AND terminated_at IS NULL)
        ),
        CONSTRAINT sessions_lifecycle_fields_check CHECK (
            (lifecycle = 'task' AND ttl_seconds IS NOT NULL AND ttl_seconds > 0
                AND last_heartbeat_at IS NULL AND heartbeat_deadline_at IS NULL)
            OR (lifecycle = 'service' AND ttl_seconds IS NULL
                AND last_heartbeat_at IS NOT NULL AND heartbeat_deadline_at IS NOT NULL)
        )
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS delegation_edges (
        id text NOT NULL,
        zone_id text NOT NULL,
        source_session_id text NOT NULL,
        target_session_id text NOT NULL,
        issuer_application_id text NOT NULL,
        receiver_application_id text NOT NULL,
        resource_id text,
        scopes text[] NOT NULL DEFAULT '{}',
        constraints_json jsonb NOT NULL DEFAULT '{}',
        status text NOT NULL DEFAULT 'active',
        expires_at timestamptz NOT NULL,
        edge_version integer NOT NULL DEFAULT 0,
        revoked_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        parent_edge_id text,
        CONSTRAINT delegation_edges_pkey PRIMARY KEY (id),
        CONSTRAINT delegation_edges_zone_id_id_unique UNIQUE (zone_id, id),
        CONSTRAINT delegation_edges_source_session_id_fkey FOREIGN KEY (source_session_id)
            REFERENCES sessions (id) ON DELETE CASCADE,
        CONSTRAINT delegation_edges_zone_source_fk FOREIGN KEY (zone_id, source_session_id)
            REFERENCES sessions (zone_id, id) ON DELETE CASCADE,
        CONSTRAINT delegation_edges_target_session_id_fkey FOREIGN KEY (target_session_id)
            REFERENCES sessions (id) ON DELETE CASCADE,
        CONSTRAINT delegation_edges_zone_target_fk FOREIGN KEY (zone_id, target_session_id)
            REFERENCES sessions (zone_id, id) ON DELETE CASCADE,
        CONSTRAINT delegation_edges_zone_issuer_application_fk
            FOREIGN KEY (zone_id, issuer_application_id) REFERENCES applications (zone_id, id),
        CONSTRAINT delegation_edges_zone_receiver_application_fk
            FOREIGN KEY (zone_id, receiver_application_id) REFERENCES applications (zone_id, id),
        CONSTRAINT delegation_edges_resource_id_fkey FOREIGN KEY (resource_id)
            REFERENCES resources (id),
        CONSTRAINT delegation_edges_zone_resource_fk FOREIGN KEY (zone_id, resource_id)
            REFERENCES resources (zone_id, id),
        -- zone_id is NOT NULL and part of the key: only the parent pointer is cleared.
        CONSTRAINT delegation_edges_zone_parent_fk FOREIGN KEY (zone_id, parent_edge_id)
            REFERENCES delegation_edges (zone_id, id) ON DELETE SET NULL (parent_edge_id),
        CONSTRAINT delegation_edges_status_check
            CHECK (status IN ('active', 'revoked', 'expired')),
        CONSTRAINT delegation_edges_check CHECK (source_session_id <> target_session_id),
        CONSTRAINT delegation_edges_revocation_fields_check CHECK (
            (status = 'revoked' AND revoked_at IS NOT NULL)
            OR (status IN ('active', 'expired') AND revoked_at IS NULL)
        )
    )
    """,
    # No FK to zones: audit history outlives zones, and a partitioned FK taxes every insert.
    """
    CREATE TABLE IF NOT EXISTS audit_events (
        id text NOT NULL,
        zone_id text NOT NULL,
        event_type text NOT NULL,
        request_id text,
        decision text,
        policy_set_id text,
        policy_set_version_id text,
        manifest_sha text,
        evaluation_status text,
        determining_policies_json jsonb,
        diagnostics_json jsonb,
        metadata_json jsonb,
        occurred_at timestamptz NOT NULL,
        ingested_at timestamptz NOT NULL DEFAULT now(),
        content_sha256 text,
        prev_content_sha256 text,
        chain_hmac text,
        chain_seq bigint,
        ingest_signature text,
        CONSTRAINT audit_events_pkey PRIMARY KEY (id, occurred_at)
    ) PARTITION BY RANGE (occurred_at)
    """,
    "CREATE TABLE IF NOT EXISTS audit_events_default PARTITION OF audit_events DEFAULT",
    "CREATE SEQUENCE IF NOT EXISTS audit_ingest_alerts_id_seq AS bigint START 1 INCREMENT 1",
    """
    CREATE TABLE IF NOT EXISTS audit_ingest_alerts (
        id bigint NOT NULL DEFAULT nextval('audit_ingest_alerts_id_seq'),
        event_id text NOT NULL,
        zone_id text NOT NULL,
        kind text NOT NULL,
        detail text,
        observed_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT audit_ingest_alerts_pkey PRIMARY KEY (id)
    )
    """,
    # Idempotent; ties the sequence's life to the column as bigserial would.
    "ALTER SEQUENCE audit_ingest_alerts_id_seq OWNED BY audit_ingest_alerts.id",
)

INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS zones_active_idx ON zones (id) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS zones_owner_account_id_idx ON zones (owner_account_id)"
    " WHERE owner_account_id IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS admin_tokens_token_sha256_active"
    " ON admin_tokens (token_sha256) WHERE revoked_at IS NULL",
    "CREATE INDEX IF NOT EXISTS admin_tokens_zone_active ON admin_tokens (zone_id)"
    " WHERE revoked_at IS NULL AND scope = 'zone'",
    "CREATE INDEX IF NOT EXISTS admin_audit_events_actor_time"
    " ON admin_audit_events (actor_id, occurred_at DESC) WHERE actor_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS admin_audit_events_chain"
    " ON admin_audit_events (zone_id, chain_seq DESC)",
    "CREATE INDEX IF NOT EXISTS admin_audit_events_request ON admin_audit_events (request_id)",
    "CREATE INDEX IF NOT EXISTS admin_audit_events_zone_time"
    " ON admin_audit_events (zone_id, occurred_at DESC)",
    "CREATE INDEX IF NOT EXISTS applications_zone_id_expires_at_idx"
    " ON applications (zone_id, expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS applications_zone_id_idx ON applications (zone_id)",
    "CREATE INDEX IF NOT EXISTS applications_zone_keyset_idx"
    " ON applications (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS providers_active_idx ON providers (id) WHERE archived_at IS NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS providers_zone_identifier_active_uidx"
    " ON providers (zone_id, identifier) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS providers_zone_keyset_idx"
    " ON providers (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS resources_active_idx ON resources (id) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS resources_credential_provider_id_idx"
    " ON resources (credential_provider_id)",
    "CREATE INDEX IF NOT EXISTS resources_zone_keyset_idx"
    " ON resources (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS resources_zone_id_identifier_key"
    " ON resources (zone_id, identifier) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS delegated_grants_zone_id_user_id_idx"
    " ON delegated_grants (zone_id, user_id)",
    "CREATE INDEX IF NOT EXISTS delegated_grants_zone_id_user_id_resource_id_status_idx"
    " ON delegated_grants (zone_id, user_id, resource_id, status)",
    "CREATE INDEX IF NOT EXISTS delegated_grants_zone_keyset_idx"
    " ON delegated_grants (zone_id, created_at DESC, id DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS provider_connections_active_subject_provider_uidx"
    " ON provider_connections (zone_id, subject_id, provider_id) WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS provider_connections_zone_provider_status_idx"
    " ON provider_connections (zone_id, provider_id, status)",
    "CREATE INDEX IF NOT EXISTS provider_connections_zone_subject_status_idx"
    " ON provider_connections (zone_id, subject_id, status)",
    "CREATE INDEX IF NOT EXISTS secret_store_zone_id_idx ON secret_store (zone_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS policies_zone_id_name_key"
    " ON policies (zone_id, name) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS policies_zone_keyset_idx"
    " ON policies (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS policy_versions_policy_id_created_at_idx"
    " ON policy_versions (policy_id, created_at DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS policy_sets_zone_id_name_key"
    " ON policy_sets (zone_id, name) WHERE archived_at IS NULL",
    "CREATE INDEX IF NOT EXISTS policy_sets_zone_keyset_idx"
    " ON policy_sets (zone_id, created_at DESC, id DESC) WHERE archived_at IS NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS policy_set_bindings_one_active_per_zone"
    " ON policy_set_bindings (zone_id) WHERE active_version_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS event_outbox_dispatch_ready"
    " ON event_outbox (available_at) WHERE dispatched_at IS NULL",
    "CREATE INDEX IF NOT EXISTS event_outbox_undispatched_age"
    " ON event_outbox (created_at) WHERE dispatched_at IS NULL",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_application_idx"
    " ON step_up_challenges (application_id) WHERE application_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_approver"
    " ON step_up_challenges (approver_subject_id) WHERE approver_subject_id IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS step_up_challenges_consume_uniq"
    " ON step_up_challenges (id) WHERE consumed_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_expires_idx ON step_up_challenges (expires_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS step_up_challenges_live_binding_uniq"
    " ON step_up_challenges (zone_id, principal_id, session_id, resource_set_hash)"
    " NULLS NOT DISTINCT WHERE consumed_at IS NULL",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_session_id_idx"
    " ON step_up_challenges (session_id)",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_zone_keyset_idx"
    " ON step_up_challenges (zone_id, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_zone_principal"
    " ON step_up_challenges (zone_id, principal_id) WHERE consumed_at IS NULL",
    "CREATE INDEX IF NOT EXISTS authority_records_expires_at_idx"
    " ON authority_records (expires_at) WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS authority_records_zone_active_idx"
    " ON authority_records (zone_id, expires_at) WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS authority_records_zone_created_idx"
    " ON authority_records (zone_id, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS authority_records_zone_id_subject_id_status_idx"
    " ON authority_records (zone_id, subject_id, status)",
    "CREATE INDEX IF NOT EXISTS authority_records_zone_subject_idx"
    " ON authority_records (zone_id, subject_id)",
    "CREATE INDEX IF NOT EXISTS sessions_last_active_at_idx"
    " ON sessions (last_active_at) WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS sessions_terminal_retention_idx"
    " ON sessions (terminated_at, id) WHERE status IN ('terminated', 'expired')",
    "CREATE INDEX IF NOT EXISTS sessions_service_heartbeat_deadline_idx"
    " ON sessions (heartbeat_deadline_at) WHERE status = 'active' AND lifecycle = 'service'",
    "CREATE INDEX IF NOT EXISTS sessions_subject_authority_record_id_idx"
    " ON sessions (subject_authority_record_id)",
    "CREATE INDEX IF NOT EXISTS sessions_zone_id_parent_id_status_idx"
    " ON sessions (zone_id, parent_id, status)",
    "CREATE INDEX IF NOT EXISTS delegation_edges_expires_at_idx"
    " ON delegation_edges (expires_at) WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS delegation_edges_zone_id_parent_edge_id_idx"
    " ON delegation_edges (zone_id, parent_edge_id) WHERE parent_edge_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS delegation_edges_zone_id_resource_id_status_idx"
    " ON delegation_edges (zone_id, resource_id, status) WHERE resource_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS delegation_edges_zone_id_source_session_id_status_idx"
    " ON delegation_edges (zone_id, source_session_id, status)",
    "CREATE INDEX IF NOT EXISTS delegation_edges_zone_id_target_session_id_status_idx"
    " ON delegation_edges (zone_id, target_session_id, status)",
    # Created on the parent: every partition, present or future, inherits them.
    "CREATE INDEX IF NOT EXISTS audit_events_agent_labels_idx"
    " ON audit_events USING gin ((metadata_json -> 'agent_labels'))",
    "CREATE INDEX IF NOT EXISTS audit_events_agent_session_idx"
    " ON audit_events ((metadata_json ->> 'agent_session_id'))"
    " WHERE metadata_json ? 'agent_session_id'",
    "CREATE INDEX IF NOT EXISTS audit_events_session_idx"
    " ON audit_events ((metadata_json ->> 'session_id')) WHERE metadata_json ? 'session_id'",
    "CREATE INDEX IF NOT EXISTS audit_events_request_id_idx"
    " ON audit_events (request_id) WHERE request_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_events_zone_chain ON audit_events (zone_id, chain_seq DESC)",
    "CREATE INDEX IF NOT EXISTS audit_events_zone_id_occurred_at_idx"
    " ON audit_events (zone_id, occurred_at DESC)",
    "CREATE INDEX IF NOT EXISTS audit_ingest_alerts_zone_time"
    " ON audit_ingest_alerts (zone_id, observed_at DESC)",
)

IMMUTABILITY: tuple[str, ...] = (
    """
    CREATE OR REPLACE FUNCTION reject_policy_version_mutation() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'policy_versions rows are immutable';
    END;
    $$
    """,
    # Row locks (SELECT ... FOR SHARE) fire no trigger, so readers can still pin a version.
    "CREATE OR REPLACE TRIGGER policy_versions_immutable"
    " BEFORE DELETE OR UPDATE ON policy_versions"
    " FOR EACH ROW EXECUTE FUNCTION reject_policy_version_mutation()",
    "CREATE OR REPLACE TRIGGER policy_set_versions_immutable"
    " BEFORE DELETE OR UPDATE ON policy_set_versions"
    " FOR EACH ROW EXECUTE FUNCTION reject_policy_version_mutation()",
)


def month_partitions(now: datetime, months: int) -> list[tuple[str, str, str]]:
    """(name, lower bound, upper bound) of `months` monthly partitions from `now`'s UTC month.

    Bounds are literals with an explicit `+00` offset: PostgreSQL would otherwise read a
    bare date in the session's TimeZone and shift the partition edges. A frozen copy of
    caracal_api.kit.migrate.audit_partition_window (a revision must not change when the
    application code does); the schema tests check that both agree.
    """
    now = now.astimezone(UTC)
    year, month = now.year, now.month
    out: list[tuple[str, str, str]] = []
    for _ in range(months):
        next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
        out.append(
            (
                f"audit_events_y{year:04d}m{month:02d}",
                f"{year:04d}-{month:02d}-01 00:00:00+00",
                f"{next_year:04d}-{next_month:02d}-01 00:00:00+00",
            )
        )
        year, month = next_year, next_month
    return out


def _partition_statement(name: str, lower: str, upper: str) -> str:
    # PostgreSQL refuses a partition whose range already has rows in the default partition
    # (possible on a database the platform created months ago); like the ingest's upkeep
    # (events.md §6.4), skip that month with a warning instead of failing the whole migration.
    return f"""
    DO $$
    BEGIN
        IF to_regclass('{name}') IS NOT NULL THEN
            RETURN;
        END IF;
        IF EXISTS (
            SELECT 1 FROM audit_events_default
            WHERE occurred_at >= '{lower}' AND occurred_at < '{upper}' LIMIT 1
        ) THEN
            RAISE WARNING 'audit_events partition {name} not created: '
                'audit_events_default holds rows of that month';
            RETURN;
        END IF;
        CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_events
            FOR VALUES FROM ('{lower}') TO ('{upper}');
    END
    $$
    """


def upgrade() -> None:
    for statement in (*TABLES, *INDEXES, *IMMUTABILITY):
        op.execute(statement)
    for name, lower, upper in month_partitions(datetime.now(UTC), AUDIT_PARTITION_MONTHS):
        op.execute(_partition_statement(name, lower, upper))


def downgrade() -> None:
    # Dropping the parent drops every audit_events partition with it; the owned sequence
    # goes with audit_ingest_alerts.
    for table in (
        "audit_ingest_alerts",
        "audit_events",
        "delegation_edges",
        "sessions",
        "authority_records",
        "step_up_challenges",
        "event_outbox",
        "policy_set_bindings",
        "policy_set_versions",
        "policy_sets",
        "policy_versions",
        "policies",
        "secret_store",
        "provider_connections",
        "delegated_grants",
        "resources",
        "providers",
        "applications",
        "admin_audit_events",
        "admin_tokens",
        "zones",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP SEQUENCE IF EXISTS audit_ingest_alerts_id_seq")
    op.execute("DROP FUNCTION IF EXISTS reject_policy_version_mutation()")
