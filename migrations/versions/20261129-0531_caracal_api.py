"""caracal-api additions (schema.md §3): indexes, the outbox wake-up trigger.

Additive only, so existing readers and writers of the shared tables are unaffected.

Revision ID: 0002_caracal_api
Revises: 0001_baseline
Create Date: 2026-11-29 05:31:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_caracal_api"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Groups of live managed applications whose names collide case-insensitively; they would make
# the unique index build fail with an opaque message, so name them (at most 20) up front.
REJECT_DUPLICATE_APPLICATION_NAMES = """
DO $$
DECLARE
    groups bigint;
    listing text;
BEGIN
    SELECT count(*), string_agg(
               format('zone %s, name %L: %s', zone_id, lower_name, ids), '; '
           ) FILTER (WHERE rn <= 20)
      INTO groups, listing
      FROM (
            SELECT zone_id, lower(name) AS lower_name,
                   string_agg(id, ', ' ORDER BY id) AS ids,
                   row_number() OVER (ORDER BY zone_id, lower(name)) AS rn
              FROM applications
             WHERE archived_at IS NULL AND registration_method = 'managed'
             GROUP BY zone_id, lower(name)
            HAVING count(*) > 1
           ) AS duplicates;
    IF groups > 0 THEN
        RAISE EXCEPTION
            'cannot create applications_zone_managed_name_active_uidx: % group(s) of live '
            'managed applications share a name ignoring case: %', groups, listing
            USING ERRCODE = 'unique_violation',
                  HINT = 'Rename or archive all but one application of each group, '
                         'then run caracal-api migrate again.';
    END IF;
END
$$
"""

UPGRADE: tuple[str, ...] = (
    REJECT_DUPLICATE_APPLICATION_NAMES,
    "CREATE UNIQUE INDEX IF NOT EXISTS applications_zone_managed_name_active_uidx"
    " ON applications (zone_id, lower(name))"
    " WHERE archived_at IS NULL AND registration_method = 'managed'",
    # Dispatchers LISTEN on this channel; NOTIFY is delivered at commit, never on rollback,
    # and PostgreSQL folds identical notifications of one transaction into one.
    """
    CREATE OR REPLACE FUNCTION event_outbox_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('caracal_event_outbox', '');
        RETURN NULL;
    END;
    $$
    """,
    "CREATE OR REPLACE TRIGGER event_outbox_notify AFTER INSERT ON event_outbox"
    " FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify()",
    "CREATE INDEX IF NOT EXISTS event_outbox_invalidate_set_idx ON event_outbox"
    " ((payload_json ->> 'zone_id'), (payload_json ->> 'policy_set_id'),"
    " created_at DESC, id DESC)"
    " WHERE stream_name = 'caracal.policy.invalidate'",
    "CREATE INDEX IF NOT EXISTS sessions_zone_started_keyset_idx"
    " ON sessions (zone_id, started_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS admin_audit_events_zone_keyset_idx"
    " ON admin_audit_events (zone_id, occurred_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS admin_audit_events_unchained_idx"
    " ON admin_audit_events (zone_id, occurred_at, id) WHERE chain_seq IS NULL",
    "CREATE INDEX IF NOT EXISTS step_up_challenges_zone_binding_idx"
    " ON step_up_challenges (zone_id, resource_set_hash) WHERE resource_set_hash IS NOT NULL",
    # NULLS NOT DISTINCT so the global chain (NULL zone_id) is protected as well.
    "CREATE UNIQUE INDEX IF NOT EXISTS admin_audit_events_chain_seq_uidx"
    " ON admin_audit_events (zone_id, chain_seq) NULLS NOT DISTINCT"
    " WHERE chain_seq IS NOT NULL",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP INDEX IF EXISTS admin_audit_events_chain_seq_uidx",
        "DROP INDEX IF EXISTS step_up_challenges_zone_binding_idx",
        "DROP INDEX IF EXISTS admin_audit_events_unchained_idx",
        "DROP INDEX IF EXISTS admin_audit_events_zone_keyset_idx",
        "DROP INDEX IF EXISTS sessions_zone_started_keyset_idx",
        "DROP INDEX IF EXISTS event_outbox_invalidate_set_idx",
        "DROP TRIGGER IF EXISTS event_outbox_notify ON event_outbox",
        "DROP FUNCTION IF EXISTS event_outbox_notify()",
        "DROP INDEX IF EXISTS applications_zone_managed_name_active_uidx",
    ):
        op.execute(statement)
