"""Every Prometheus family of foundation §14.3, in one registry of our own.

`_created` series are disabled so counters expose only their `_total` samples.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import disable_created_metrics as _disable_created

_disable_created()

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

HTTP_REQUESTS = Counter(
    "caracal_api_http_requests_total",
    "HTTP requests served.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "caracal_api_http_request_duration_seconds",
    "Time from first byte read to response end.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

OUTBOX_PENDING = Gauge(
    "caracal_api_outbox_pending_total",
    "Undispatched outbox rows that are not dead.",
    registry=REGISTRY,
)
OUTBOX_DEAD = Gauge(
    "caracal_api_outbox_dead_total",
    "Undispatched outbox rows marked dead.",
    registry=REGISTRY,
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "caracal_api_outbox_oldest_pending_age_seconds",
    "Age of the oldest pending outbox row.",
    registry=REGISTRY,
)
OUTBOX_OLDEST_DEAD_AGE = Gauge(
    "caracal_api_outbox_oldest_dead_age_seconds",
    "Age of the oldest dead outbox row.",
    registry=REGISTRY,
)
OUTBOX_HEALTH_UP = Gauge(
    "caracal_api_outbox_health_up",
    "1 when the last outbox health query succeeded.",
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "caracal_api_outbox_published_total",
    "Outbox rows published by this process.",
    ["stream"],
    registry=REGISTRY,
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "caracal_api_outbox_publish_failures_total",
    "Failed outbox publish attempts.",
    ["stream"],
    registry=REGISTRY,
)
OUTBOX_DEAD_LETTERED = Counter(
    "caracal_api_outbox_dead_lettered_total",
    "Outbox rows this process marked dead.",
    ["stream"],
    registry=REGISTRY,
)
OUTBOX_PUBLISH_LATENCY = Histogram(
    "caracal_api_outbox_publish_latency_seconds",
    "dispatched_at - created_at per published row.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
OUTBOX_BATCH_DURATION = Histogram(
    "caracal_api_outbox_batch_duration_seconds",
    "Claim + publish + mark per batch.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

AUDIT_INGEST_EVENTS = Counter(
    "caracal_api_audit_ingest_events_total",
    "Audit ingest results.",
    ["outcome"],
    registry=REGISTRY,
)
AUDIT_INGEST_FAILURES = Counter(
    "caracal_api_audit_ingest_failures_total",
    "Audit ingest dead-letter reasons.",
    ["reason"],
    registry=REGISTRY,
)

ADMIN_AUDIT_FAILURES = Counter(
    "caracal_api_admin_audit_failures_total",
    "Failure records that could not be written.",
    registry=REGISTRY,
)
ADMIN_AUDIT_UNCHAINED = Gauge(
    "caracal_api_admin_audit_unchained",
    "Admin-audit rows not yet chained.",
    registry=REGISTRY,
)
ADMIN_AUDIT_CHAIN_LAG = Histogram(
    "caracal_api_admin_audit_chain_lag_seconds",
    "Chaining time minus occurred_at.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

RATE_LIMIT_REJECTIONS = Counter(
    "caracal_api_rate_limit_rejections_total",
    "Requests answered 429.",
    ["limiter"],
    registry=REGISTRY,
)
RATE_LIMIT_BYPASSED = Counter(
    "caracal_api_rate_limit_bypassed_total",
    "Fail-open decisions while Redis was unavailable.",
    ["limiter"],
    registry=REGISTRY,
)
ADMIN_TOKEN_VERIFICATIONS = Counter(
    "caracal_api_admin_token_verifications_total",
    "Admin token verifications.",
    ["result"],
    registry=REGISTRY,
)

REGO_OPERATIONS = Counter(
    "caracal_api_rego_operations_total",
    "Rego compile and evaluate operations.",
    ["kind", "result"],
    registry=REGISTRY,
)
REGO_DURATION = Histogram(
    "caracal_api_rego_duration_seconds",
    "Rego compile / evaluate time.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
POLICY_BUNDLE_CACHE = Counter(
    "caracal_api_policy_bundle_cache_total",
    "Compiled bundle cache lookups.",
    ["result"],
    registry=REGISTRY,
)

SECRET_BACKEND_OPERATIONS = Counter(
    "caracal_secret_backend_operations",
    "Secret-store put/get/delete attempts.",
    registry=REGISTRY,
)
SECRET_BACKEND_ERRORS = Counter(
    "caracal_secret_backend_errors",
    "Failed secret-store operations.",
    registry=REGISTRY,
)
