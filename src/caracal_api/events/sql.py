"""SQL of the dispatcher, retention, outbox health and requeue (events.md §2, §3, §7).

Kept verbatim from the contract where it fixes the text; every statement binds its values.
The dispatcher's four hot statements are driver SQL (`$n` parameters, kit.rawread); the
rest are SQLAlchemy text.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import TextClause, text

# $1 batch, $2 lease seconds, $3 worker id
CLAIM: Final[str] = """
    WITH c AS (
      SELECT id FROM event_outbox
      WHERE dispatched_at IS NULL
        AND available_at <= now()
        AND (locked_until IS NULL OR locked_until < now())
      ORDER BY available_at, created_at, id
      LIMIT $1
      FOR UPDATE SKIP LOCKED)
    UPDATE event_outbox o
    SET locked_until = now() + make_interval(secs => $2::float8),
        locked_by = $3,
        attempts = o.attempts + 1
    FROM c WHERE o.id = c.id
    RETURNING o.id, o.stream_name, o.payload_json, o.attempts, o.created_at
"""

# $1 ids, $2 attempts, $3 worker id
MARK_DISPATCHED: Final[str] = """
    UPDATE event_outbox o
    SET dispatched_at = now(), locked_until = NULL, last_error = NULL
    FROM unnest($1::text[], $2::int[]) AS t(id, attempts)
    WHERE o.id = t.id AND o.attempts = t.attempts
      AND o.locked_by = $3 AND o.dispatched_at IS NULL
    RETURNING o.id, EXTRACT(EPOCH FROM o.dispatched_at - o.created_at) AS latency
"""

# Per-row backoff: b = min(60, 2^min(attempts, 6)), d = floor(b + random() * 0.3 * b).
# Dead rows get available_at = 'infinity'; the RETURNING compares in SQL so Python never
# loads an infinite timestamp.
# $1 ids, $2 attempts, $3 errors, $4 max attempts, $5 worker id
MARK_FAILED: Final[str] = """
    UPDATE event_outbox o
    SET available_at = CASE
          WHEN o.attempts >= $4 THEN 'infinity'::timestamptz
          ELSE now() + make_interval(secs => floor(
                 least(60, power(2, least(o.attempts, 6)))
                 + random() * 0.3 * least(60, power(2, least(o.attempts, 6)))))
        END,
        locked_until = NULL,
        last_error = t.err
    FROM unnest($1::text[], $2::int[], $3::text[]) AS t(id, attempts, err)
    WHERE o.id = t.id AND o.attempts = t.attempts
      AND o.locked_by = $5 AND o.dispatched_at IS NULL
    RETURNING o.id, o.stream_name, o.available_at = 'infinity'::timestamptz AS dead
"""

# Redis unreachable: the claim is undone, so an outage never counts toward dead.
# $1 ids, $2 attempts, $3 error text, $4 worker id
RELEASE: Final[str] = """
    UPDATE event_outbox o
    SET attempts = o.attempts - 1, locked_until = NULL, last_error = $3
    FROM unnest($1::text[], $2::int[]) AS t(id, attempts)
    WHERE o.id = t.id AND o.attempts = t.attempts
      AND o.locked_by = $4 AND o.dispatched_at IS NULL
"""

RETENTION_DELETE: Final[TextClause] = text(
    """
    DELETE FROM event_outbox WHERE id IN (
      SELECT o.id FROM event_outbox o
      WHERE o.dispatched_at < now() - make_interval(days => :days)
        AND NOT (o.stream_name = 'caracal.policy.invalidate' AND NOT EXISTS (
          SELECT 1 FROM event_outbox n
          WHERE n.stream_name = 'caracal.policy.invalidate'
            AND n.payload_json->>'zone_id' = o.payload_json->>'zone_id'
            AND n.payload_json->>'policy_set_id' = o.payload_json->>'policy_set_id'
            AND (n.created_at, n.id) > (o.created_at, o.id)))
      LIMIT 1000
      FOR UPDATE SKIP LOCKED)
    """
)

HEALTH: Final[TextClause] = text(
    """
    SELECT
      count(*) FILTER (WHERE available_at <> 'infinity') AS pending,
      count(*) FILTER (WHERE available_at =  'infinity') AS dead,
      COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)
               FILTER (WHERE available_at <> 'infinity')), 0) AS oldest_pending_age,
      COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)
               FILTER (WHERE available_at =  'infinity')), 0) AS oldest_dead_age
    FROM event_outbox WHERE dispatched_at IS NULL
    """
)

REQUEUE: Final[TextClause] = text(
    """
    UPDATE event_outbox
    SET available_at = now(), attempts = 0, locked_until = NULL
    WHERE dispatched_at IS NULL AND available_at = 'infinity'
      AND (CAST(:stream AS text) IS NULL OR stream_name = :stream)
      AND (CAST(:id AS text) IS NULL OR id = :id)
    """
)

DEAD_BY_STREAM: Final[TextClause] = text(
    """
    SELECT stream_name, count(*) AS dead
    FROM event_outbox
    WHERE dispatched_at IS NULL AND available_at = 'infinity'
    GROUP BY stream_name ORDER BY stream_name
    """
)
