"""Settings from the environment (CONTRACT §4, foundation §15).

Every setting is read once at start by `load_settings`. Bad input raises `ConfigError`
naming the variable and the rule; the CLI prints that one line and exits 2. Secrets may be
given as `NAME_FILE` (a path; one trailing LF or CRLF is removed); setting both `NAME` and
`NAME_FILE` is bad configuration.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SECRET_VARS = (
    "DATABASE_URL",
    "DATABASE_DIRECT_URL",
    "REDIS_URL",
    "CARACAL_ADMIN_TOKEN",
    "SECRET_STORE_KEK",
    "SECRET_STORE_KEK_PREVIOUS",
    "STREAMS_HMAC_KEY",
    "AUDIT_HMAC_KEY",
    "AUDIT_HMAC_KEY_PREVIOUS",
    "GATEWAY_STS_HMAC_KEY",
    "METRICS_BEARER",
)

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(Exception):
    """Bad configuration: one line naming the variable and the rule."""

    def __init__(self, variable: str, rule: str) -> None:
        self.variable = variable
        self.rule = rule
        super().__init__(f"{variable}: {rule}")


@dataclass(frozen=True)
class Settings:
    mode: str = "dev"
    host: str = "127.0.0.1"
    port: int = 3000
    database_url: str | None = None
    database_direct_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".caracal")
    admin_token: str | None = None
    secret_store_kek: bytes | None = None
    secret_store_kek_previous: bytes | None = None
    streams_hmac_key: bytes | None = None
    audit_hmac_key: bytes | None = None
    audit_hmac_keys_previous: tuple[bytes, ...] = ()
    sts_url: str | None = None
    gateway_sts_hmac_key: bytes | None = None
    api_body_limit_bytes: int = 1_048_576
    api_v1_rate_limit_per_min: int = 600
    policy_validate_rate_limit_per_min: int = 60
    admin_auth_fail_limit_per_min: int = 60
    ready_rate_limit_per_min: int = 120
    api_ready_outbox_dead_max: int = 0
    api_enable_docs: bool = True
    metrics_bearer: str | None = None
    outbox_batch_size: int = 128
    outbox_poll_ms: int = 250
    outbox_lock_sec: int = 30
    outbox_max_attempts: int = 100
    outbox_stream_maxlen: int = 100_000
    outbox_retention_days: int = 30
    db_pool_max: int = 20
    db_statement_timeout_ms: int = 15_000
    db_pool_timeout_ms: int = 5_000
    shutdown_drain_delay_ms: int = 0
    shutdown_grace_ms: int = 15_000
    log_level: str = "info"
    trust_proxy: int = 0
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    admin_token_last_used_debounce_sec: int = 60
    rego_workers: int = 2
    rego_timeout_ms: int = 3_000
    audit_ingest_max_deliveries: int = 8
    audit_ingest_claim_idle_sec: int = 30
    private_egress_hosts: frozenset[str] = frozenset()
    egress_ca_file: Path | None = None
    api_max_resources_per_zone: int = 100_000
    api_processes: int = 1

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def embedded_postgres(self) -> bool:
        """Embedded mode (CONTRACT §3) means no DATABASE_URL."""
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def session_database_url(self) -> str | None:
        """DSN for session-bound work (LISTEN, session advisory locks, migrate)."""
        return self.database_direct_url or self.database_url


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        file_name = f"{name}_FILE"
        path = self.env.get(file_name) if name in SECRET_VARS else None
        if value is not None and path is not None:
            raise ConfigError(name, f"set either {name} or {file_name}, not both")
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    file_name, f"cannot read {path!r}: {exc.__class__.__name__}"
                ) from None
            if text.endswith("\r\n"):
                text = text[:-2]
            elif text.endswith("\n"):
                text = text[:-1]
            return text
        return value

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        return value

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]+", value.strip()):
            raise ConfigError(name, f"must be an integer between {lo} and {hi}")
        number = int(value.strip())
        if not lo <= number <= hi:
            raise ConfigError(name, f"must be an integer between {lo} and {hi}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(name, "must be true or false")

    def hex_key(self, name: str, *, min_bytes: int = 32) -> bytes | None:
        value = self.text(name)
        if value is None:
            return None
        return _decode_hex(name, value.strip(), min_bytes)


def _decode_hex(name: str, value: str, min_bytes: int) -> bytes:
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
        raise ConfigError(name, f"must be hex encoding at least {min_bytes} bytes")
    key = bytes.fromhex(value)
    if len(key) < min_bytes:
        raise ConfigError(name, f"must be hex encoding at least {min_bytes} bytes")
    return key


def is_weak_kek(key: bytes) -> bool:
    """objects.md §1.3: constant, ascending, descending or 2-byte repeating keys are weak."""
    if all(b == key[0] for b in key):
        return True
    if all(key[i] == key[i - 1] + 1 for i in range(1, len(key))):
        return True
    if all(key[i] == key[i - 1] - 1 for i in range(1, len(key))):
        return True
    return all(key[i] == key[i % 2] for i in range(2, len(key)))


def _kek(reader: _Reader, name: str) -> bytes | None:
    value = reader.text(name)
    if value is None:
        return None
    value = value.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ConfigError(name, "must be exactly 32 bytes as 64 hex characters")
    key = bytes.fromhex(value)
    if is_weak_kek(key):
        raise ConfigError(name, "is a weak key (constant, sequential or repeating bytes)")
    return key


def _mode(reader: _Reader) -> str:
    value = (reader.text("CARACAL_MODE") or "dev").strip().lower()
    if value in ("production", "rc", "stable"):
        return "production"
    if value == "dev":
        return "dev"
    raise ConfigError("CARACAL_MODE", "must be dev or production (rc and stable mean production)")


def _log_level(reader: _Reader) -> str:
    value = (reader.text("LOG_LEVEL") or "info").strip().lower()
    if value == "warn":
        value = "warning"
    if value not in LOG_LEVELS:
        raise ConfigError(
            "LOG_LEVEL", "must be one of debug, info, warning (warn), error, critical"
        )
    return value


def _trust_proxy(reader: _Reader) -> int:
    value = reader.text("TRUST_PROXY")
    if value is None:
        return 0
    lowered = value.strip().lower()
    if lowered == "false":
        return 0
    if lowered == "true":
        return 1
    return reader.integer("TRUST_PROXY", 0, 0, 16)


def _url(reader: _Reader, name: str, schemes: tuple[str, ...]) -> str | None:
    value = reader.text(name)
    if value is None:
        return None
    value = value.strip()
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in schemes:
        raise ConfigError(name, f"must be a URL with scheme {' or '.join(schemes)}")
    return value


def _admin_token(reader: _Reader, production: bool) -> str | None:
    value = reader.raw("CARACAL_ADMIN_TOKEN")
    if value is None:
        return None
    if not 1 <= len(value) <= 4096 or re.search(r"[\s\x00-\x1f\x7f]", value):
        raise ConfigError(
            "CARACAL_ADMIN_TOKEN",
            "must be 1..4096 characters without whitespace or control characters",
        )
    if production and len(value) < 32:
        raise ConfigError("CARACAL_ADMIN_TOKEN", "must be at least 32 characters in production")
    return value


def _previous_audit_keys(reader: _Reader) -> tuple[bytes, ...]:
    value = reader.text("AUDIT_HMAC_KEY_PREVIOUS")
    if value is None:
        return ()
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return tuple(_decode_hex("AUDIT_HMAC_KEY_PREVIOUS", p, 32) for p in parts)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises ConfigError on the first bad one."""
    reader = _Reader(os.environ if env is None else env)
    mode = _mode(reader)
    production = mode == "production"
    pg_schemes = ("postgres", "postgresql", "postgresql+asyncpg")
    egress = reader.text("CARACAL_PRIVATE_EGRESS_HOSTS") or ""
    ca_file = reader.text("CARACAL_EGRESS_CA_FILE")
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError("CARACAL_EGRESS_CA_FILE", f"{ca_file!r} is not a readable file")
    return Settings(
        mode=mode,
        host=(reader.text("HOST") or "127.0.0.1").strip(),
        port=reader.integer("PORT", 3000, 0, 65535),
        database_url=_url(reader, "DATABASE_URL", pg_schemes),
        database_direct_url=_url(reader, "DATABASE_DIRECT_URL", pg_schemes),
        redis_url=_url(reader, "REDIS_URL", ("redis", "rediss", "unix")),
        data_dir=Path(reader.text("CARACAL_DATA_DIR") or ".caracal"),
        admin_token=_admin_token(reader, production),
        secret_store_kek=_kek(reader, "SECRET_STORE_KEK"),
        secret_store_kek_previous=_kek(reader, "SECRET_STORE_KEK_PREVIOUS"),
        streams_hmac_key=reader.hex_key("STREAMS_HMAC_KEY"),
        audit_hmac_key=reader.hex_key("AUDIT_HMAC_KEY"),
        audit_hmac_keys_previous=_previous_audit_keys(reader),
        sts_url=_url(reader, "STS_URL", ("http", "https")),
        gateway_sts_hmac_key=reader.hex_key("GATEWAY_STS_HMAC_KEY"),
        api_body_limit_bytes=reader.integer("API_BODY_LIMIT_BYTES", 1_048_576, 1024, 1 << 30),
        api_v1_rate_limit_per_min=reader.integer("API_V1_RATE_LIMIT_PER_MIN", 600, 0, 10**9),
        policy_validate_rate_limit_per_min=reader.integer(
            "POLICY_VALIDATE_RATE_LIMIT_PER_MIN", 60, 0, 10**9
        ),
        admin_auth_fail_limit_per_min=reader.integer("ADMIN_AUTH_FAIL_LIMIT_PER_MIN", 60, 0, 10**9),
        ready_rate_limit_per_min=reader.integer("READY_RATE_LIMIT_PER_MIN", 120, 0, 10**9),
        api_ready_outbox_dead_max=reader.integer("API_READY_OUTBOX_DEAD_MAX", 0, 0, 10**9),
        api_enable_docs=reader.boolean("API_ENABLE_DOCS", not production),
        metrics_bearer=reader.text("METRICS_BEARER"),
        outbox_batch_size=reader.integer("OUTBOX_BATCH_SIZE", 128, 1, 10_000),
        outbox_poll_ms=reader.integer("OUTBOX_POLL_MS", 250, 10, 3_600_000),
        outbox_lock_sec=reader.integer("OUTBOX_LOCK_SEC", 30, 1, 86_400),
        outbox_max_attempts=reader.integer("OUTBOX_MAX_ATTEMPTS", 100, 1, 1_000_000),
        outbox_stream_maxlen=reader.integer("OUTBOX_STREAM_MAXLEN", 100_000, 0, 10**12),
        outbox_retention_days=reader.integer("OUTBOX_RETENTION_DAYS", 30, 0, 36_500),
        db_pool_max=reader.integer("DB_POOL_MAX", 20, 1, 1000),
        db_statement_timeout_ms=reader.integer("DB_STATEMENT_TIMEOUT_MS", 15_000, 0, 86_400_000),
        db_pool_timeout_ms=reader.integer("DB_POOL_TIMEOUT_MS", 5_000, 1, 600_000),
        shutdown_drain_delay_ms=reader.integer(
            "SHUTDOWN_DRAIN_DELAY_MS", 5_000 if production else 0, 0, 600_000
        ),
        shutdown_grace_ms=reader.integer("SHUTDOWN_GRACE_MS", 15_000, 0, 600_000),
        log_level=_log_level(reader),
        trust_proxy=_trust_proxy(reader),
        worker_id=(reader.text("WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}").strip(),
        admin_token_last_used_debounce_sec=reader.integer(
            "ADMIN_TOKEN_LAST_USED_DEBOUNCE_SEC", 60, 0, 86_400
        ),
        rego_workers=reader.integer("REGO_WORKERS", 2, 1, 64),
        rego_timeout_ms=reader.integer("REGO_TIMEOUT_MS", 3_000, 10, 600_000),
        audit_ingest_max_deliveries=reader.integer("AUDIT_INGEST_MAX_DELIVERIES", 8, 1, 1000),
        audit_ingest_claim_idle_sec=reader.integer("AUDIT_INGEST_CLAIM_IDLE_SEC", 30, 1, 86_400),
        private_egress_hosts=frozenset(h.strip().lower() for h in egress.split(",") if h.strip()),
        egress_ca_file=Path(ca_file) if ca_file else None,
        api_max_resources_per_zone=reader.integer("API_MAX_RESOURCES_PER_ZONE", 100_000, 0, 10**9),
        api_processes=reader.integer("API_PROCESSES", 1, 1, 64),
    )


# What each command needs in production mode (CONTRACT §4: "each command checks those it uses").
PRODUCTION_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "serve": (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_STORE_KEK",
        "STREAMS_HMAC_KEY",
        "AUDIT_HMAC_KEY",
        "CARACAL_ADMIN_TOKEN",
    ),
    "serve-no-workers": (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_STORE_KEK",
        "AUDIT_HMAC_KEY",
        "CARACAL_ADMIN_TOKEN",
    ),
    "dispatcher": ("DATABASE_URL", "REDIS_URL", "STREAMS_HMAC_KEY"),
    "audit-ingest": ("DATABASE_URL", "REDIS_URL", "AUDIT_HMAC_KEY"),
    "migrate": ("DATABASE_URL",),
    "token": ("DATABASE_URL",),
    "check": (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_STORE_KEK",
        "STREAMS_HMAC_KEY",
        "AUDIT_HMAC_KEY",
    ),
    "audit": ("DATABASE_URL", "AUDIT_HMAC_KEY"),
    "outbox": ("DATABASE_URL",),
    "secrets": ("DATABASE_URL", "SECRET_STORE_KEK"),
}

_ATTR_OF = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "SECRET_STORE_KEK": "secret_store_kek",
    "STREAMS_HMAC_KEY": "streams_hmac_key",
    "AUDIT_HMAC_KEY": "audit_hmac_key",
    "CARACAL_ADMIN_TOKEN": "admin_token",
}


def check_production(settings: Settings, command: str) -> None:
    """Production mode refuses unsafe defaults for what `command` uses."""
    if not settings.production:
        return
    for variable in PRODUCTION_REQUIREMENTS.get(command, ()):
        if getattr(settings, _ATTR_OF[variable]) is None:
            raise ConfigError(variable, "is required in production")
