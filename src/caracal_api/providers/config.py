"""The provider config contract (objects.md §3.3).

`split(kind, config, ...)` validates a `config_json` object for a kind and separates the
public part (stored in `config_json`, with the defaults the contract says are *written*)
from the secret part (sealed into the secret store). The first failure raises
`InvalidProviderConfig` (400 `invalid_provider_config`) with a sentence naming the key and
the rule; secret values never appear in a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from caracal_api.errors import BadRequest
from caracal_api.kit.egress import https_url_problem

KINDS = (
    "none",
    "caracal_mandate",
    "oauth2_authorization_code",
    "oauth2_client_credentials",
    "api_key",
    "bearer_token",
    "http_basic",
)
AUTH_CODE = "oauth2_authorization_code"
CLIENT_CREDENTIALS = "oauth2_client_credentials"
OAUTH_KINDS = frozenset({AUTH_CODE, CLIENT_CREDENTIALS})
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("client_credentials", "jwt_bearer")

PUBLIC_KEYS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "caracal_mandate": frozenset(),
    AUTH_CODE: frozenset(
        {
            "authorization_endpoint", "token_endpoint", "redirect_uri", "client_id", "scopes",
            "client_auth_method", "revocation_endpoint", "allowed_token_hosts",
            "authorization_params", "token_params", "auth_header", "auth_scheme",
            "forward_caracal_identity",
        }
    ),
    CLIENT_CREDENTIALS: frozenset(
        {
            "token_endpoint", "client_id", "scopes", "client_auth_method", "grant_type",
            "assertion_subject", "assertion_audience", "audience", "resource",
            "allowed_token_hosts", "token_params", "key_id", "certificate", "auth_header",
            "auth_scheme", "forward_caracal_identity", "allow_runtime_injection",
        }
    ),
    "api_key": frozenset(
        {
            "auth_location", "header_name", "query_param_name", "allowed_token_hosts",
            "auth_scheme", "forward_caracal_identity", "allow_runtime_injection",
        }
    ),
    "bearer_token": frozenset(
        {
            "allowed_token_hosts", "auth_header", "auth_scheme", "forward_caracal_identity",
            "allow_runtime_injection",
        }
    ),
    "http_basic": frozenset({"username", "allowed_token_hosts", "forward_caracal_identity"}),
}  # fmt: skip
SECRET_KEYS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "caracal_mandate": frozenset(),
    AUTH_CODE: frozenset({"client_secret"}),
    CLIENT_CREDENTIALS: frozenset({"client_secret", "private_key"}),
    "api_key": frozenset({"api_key"}),
    "bearer_token": frozenset({"bearer_token"}),
    "http_basic": frozenset({"password"}),
}
MULTILINE_SECRETS = frozenset({"private_key"})

MAX_SECRET_CHARS = 16_384
MAX_CERTIFICATE_CHARS = 16_384
MAX_PUBLIC_STRING_CHARS = 2_048
MAX_CONFIG_BYTES = 65_536
MAX_TOP_LEVEL_KEYS = 64

TOKEN_PARAMS_RESERVED = frozenset(
    {
        "client_assertion", "client_assertion_type", "client_id", "client_secret", "code",
        "code_verifier", "grant_type", "redirect_uri", "refresh_token", "scope",
    }
)  # fmt: skip
AUTHORIZATION_PARAMS_RESERVED = frozenset(
    {
        "client_id", "code_challenge", "code_challenge_method", "redirect_uri",
        "response_type", "scope", "state",
    }
)  # fmt: skip
UNSAFE_HEADERS = frozenset(
    {
        "baggage", "connection", "content-encoding", "content-length", "content-type",
        "expect", "forwarded", "host", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "traceparent", "tracestate", "trailer",
        "transfer-encoding", "upgrade", "via", "x-real-ip", "x-request-id",
    }
)  # fmt: skip
UNSAFE_HEADER_PREFIXES = ("x-caracal-", "x-forwarded-", "proxy-")

_HEADER_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PARAM_NAME_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_AUTH_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_URI_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_WS_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f]")


class InvalidProviderConfig(BadRequest):
    code = "invalid_provider_config"
    description = "The provider configuration is invalid."


@dataclass(frozen=True)
class SplitConfig:
    public: dict[str, Any]
    secrets: dict[str, str]

    @property
    def secret_keys(self) -> list[str]:
        return sorted(self.secrets)


def _fail(message: str) -> InvalidProviderConfig:
    return InvalidProviderConfig(message)


def is_safe_header_name(name: str) -> bool:
    lowered = name.lower()
    return (
        bool(name)
        and lowered not in UNSAFE_HEADERS
        and not lowered.startswith(UNSAFE_HEADER_PREFIXES)
    )


def split(
    kind: str,
    config: Mapping[str, Any],
    *,
    secrets_required: bool,
    stored_secret_keys: Iterable[str] = (),
) -> SplitConfig:
    """Validate `config` for `kind`; see the module docstring."""
    _check_sizes(kind, config)
    unsupported = sorted(set(config) - PUBLIC_KEYS[kind] - SECRET_KEYS[kind])
    if unsupported:
        raise _fail(
            f"config_json contains keys that {kind} providers do not support: "
            f"{', '.join(unsupported)}."
        )
    secrets = _secrets(kind, config)
    public = {k: v for k, v in config.items() if k not in SECRET_KEYS[kind]}
    if kind in ("none", "caracal_mandate"):
        return SplitConfig(public, secrets)
    if kind == "http_basic":
        _http_basic(public, secrets, secrets_required)
    elif kind == "api_key":
        _api_key(public, secrets, secrets_required)
    elif kind == "bearer_token":
        _bearer_token(public, secrets, secrets_required)
    else:
        available = set(secrets) if secrets or secrets_required else set(stored_secret_keys)
        _oauth(kind, public, secrets, available)
    _common(kind, public, secrets)
    return SplitConfig(public, secrets)


# --- sizes and secrets ---------------------------------------------------------------------


def _check_sizes(kind: str, config: Mapping[str, Any]) -> None:
    if len(config) > MAX_TOP_LEVEL_KEYS:
        raise _fail(f"config_json may have at most {MAX_TOP_LEVEL_KEYS} top-level keys.")
    for key, value in config.items():
        if key in SECRET_KEYS[kind]:
            if isinstance(value, str) and len(value.strip()) > MAX_SECRET_CHARS:
                raise _fail(f"{key} must be at most {MAX_SECRET_CHARS} characters.")
        elif key == "certificate":
            if isinstance(value, str) and len(value) > MAX_CERTIFICATE_CHARS:
                raise _fail(f"certificate must be at most {MAX_CERTIFICATE_CHARS} characters.")
        else:
            _check_public_strings(key, value, 0)
    encoded = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(encoded) > MAX_CONFIG_BYTES:
        raise _fail(f"config_json must be at most {MAX_CONFIG_BYTES} bytes as compact JSON.")


def _check_public_strings(key: str, value: Any, depth: int) -> None:
    if isinstance(value, str):
        if len(value) > MAX_PUBLIC_STRING_CHARS:
            raise _fail(f"{key} values must be at most {MAX_PUBLIC_STRING_CHARS} characters.")
    elif isinstance(value, Mapping):
        for inner_key, inner in value.items():
            _check_public_strings(key, inner_key, depth + 1)
            _check_public_strings(key, inner, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            _check_public_strings(key, inner, depth + 1)


def _secrets(kind: str, config: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in sorted(SECRET_KEYS[kind] & set(config)):
        value = config[key]
        if not isinstance(value, str) or not value.strip():
            raise _fail(f"{key} must be a non-empty string.")
        trimmed = value.strip()
        if key not in MULTILINE_SECRETS and _CONTROL_RE.search(trimmed):
            raise _fail(f"{key} must be a single line without control characters.")
        out[key] = trimmed
    return out


# --- value helpers -------------------------------------------------------------------------


def _nonblank(public: dict[str, Any], key: str, *, required: bool, trim: bool) -> None:
    if key not in public:
        if required:
            raise _fail(f"{key} is required.")
        return
    value = public[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{key} must be a non-blank string.")
    if trim:
        public[key] = value.strip()


def _string_list(public: dict[str, Any], key: str) -> None:
    value = public.get(key)
    if key in public and (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise _fail(f"{key} must be a non-empty array of non-blank strings.")


def _hosts(public: dict[str, Any]) -> None:
    if "allowed_token_hosts" not in public:
        return
    value = public["allowed_token_hosts"]
    if not isinstance(value, list) or not value:
        raise _fail("allowed_token_hosts must be a non-empty array of host names.")
    hosts: list[str] = []
    for entry in value:
        host = entry.strip().lower() if isinstance(entry, str) else ""
        if not _HOST_RE.fullmatch(host) or ".." in host:
            raise _fail("allowed_token_hosts entries must be valid host names.")
        hosts.append(host)
    public["allowed_token_hosts"] = hosts


def _safe_header(public: dict[str, Any], key: str) -> None:
    if key not in public:
        return
    value = public[key]
    if not isinstance(value, str) or not is_safe_header_name(value):
        raise _fail(f"{key} must name a header the gateway may set (not {value!r}).")


def _https(public: dict[str, Any], key: str, *, required: bool) -> None:
    if key not in public:
        if required:
            raise _fail(f"{key} is required.")
        return
    value = public[key]
    problem = https_url_problem(value) if isinstance(value, str) else "must be a string"
    if problem is not None:
        raise _fail(f"{key} {problem}.")


def _params(public: dict[str, Any], key: str, reserved: frozenset[str]) -> None:
    if key not in public:
        return
    value = public[key]
    if not isinstance(value, dict):
        raise _fail(f"{key} must be an object.")
    cleaned: dict[str, str] = {}
    for name, item in value.items():
        if not _PARAM_NAME_RE.fullmatch(name):
            raise _fail(f"{key} has an invalid parameter name {name!r}.")
        if name in reserved:
            raise _fail(f"{key} must not set the reserved parameter {name!r}.")
        if not isinstance(item, str) or not item.strip():
            raise _fail(f"{key}.{name} must be a non-blank string.")
        cleaned[name] = item.strip()
    public[key] = cleaned


# --- kinds ---------------------------------------------------------------------------------


def _http_basic(public: dict[str, Any], secrets: dict[str, str], required: bool) -> None:
    _nonblank(public, "username", required=True, trim=True)
    _hosts(public)
    if required and "password" not in secrets:
        raise _fail("password is required.")


def _api_key(public: dict[str, Any], secrets: dict[str, str], required: bool) -> None:
    location = public.get("auth_location", "header")
    if location not in ("header", "query"):
        raise _fail("auth_location must be header or query.")
    public["auth_location"] = location
    if location == "header":
        name = public.get("header_name")
        if not isinstance(name, str) or not name.strip():
            raise _fail("header_name is required when auth_location is header.")
        name = name.strip()
        if not _HEADER_TOKEN_RE.fullmatch(name) or not is_safe_header_name(name):
            raise _fail(f"header_name must name a header the gateway may set (not {name!r}).")
        public["header_name"] = name
    else:
        name = public.get("query_param_name")
        if not isinstance(name, str) or not name.strip():
            raise _fail("query_param_name is required when auth_location is query.")
        name = name.strip()
        if not _PARAM_NAME_RE.fullmatch(name):
            raise _fail("query_param_name must match ^[A-Za-z0-9._~-]+$.")
        public["query_param_name"] = name
        if "auth_scheme" in public:
            raise _fail("auth_scheme is not allowed when auth_location is query.")
    if required and "api_key" not in secrets:
        raise _fail("api_key is required.")
    _hosts(public)


def _bearer_token(public: dict[str, Any], secrets: dict[str, str], required: bool) -> None:
    if required and "bearer_token" not in secrets:
        raise _fail("bearer_token is required.")
    _hosts(public)
    _safe_header(public, "auth_header")


def _oauth(kind: str, public: dict[str, Any], secrets: dict[str, str], available: set[str]) -> None:
    _https(public, "token_endpoint", required=True)
    _nonblank(public, "client_id", required=True, trim=False)
    if "allowed_token_hosts" in public:
        _string_list(public, "allowed_token_hosts")
    else:
        host = urlsplit(public["token_endpoint"]).hostname or ""
        public["allowed_token_hosts"] = [host.lower()]
    _string_list(public, "scopes")
    _params(public, "token_params", TOKEN_PARAMS_RESERVED)
    _safe_header(public, "auth_header")
    grant = "client_credentials"
    if kind == CLIENT_CREDENTIALS:
        grant = public.get("grant_type", "client_credentials")
        if grant not in GRANT_TYPES:
            raise _fail("grant_type must be client_credentials or jwt_bearer.")
        public["grant_type"] = grant
        for key in ("audience", "resource", "key_id", "assertion_subject", "assertion_audience"):
            _nonblank(public, key, required=False, trim=True)
        forbidden = ("audience", "resource") if grant == "jwt_bearer" else (
            "assertion_subject", "assertion_audience",
        )  # fmt: skip
        for key in forbidden:
            if key in public:
                raise _fail(f"{key} is not allowed with grant_type {grant}.")
    default_method = "none" if grant == "jwt_bearer" else "client_secret_basic"
    method = public.get("client_auth_method", default_method)
    if method not in CLIENT_AUTH_METHODS:
        raise _fail(f"client_auth_method must be one of {', '.join(CLIENT_AUTH_METHODS)}.")
    if method == "private_key_jwt" and (kind == AUTH_CODE or grant == "jwt_bearer"):
        raise _fail("client_auth_method private_key_jwt is not allowed here.")
    public["client_auth_method"] = method
    if kind == AUTH_CODE:
        _https(public, "authorization_endpoint", required=True)
        _redirect_uri(public)
        _https(public, "revocation_endpoint", required=False)
        _params(public, "authorization_params", AUTHORIZATION_PARAMS_RESERVED)
    _keys(public, secrets, method, grant)
    needs_key = method == "private_key_jwt" or grant == "jwt_bearer"
    if needs_key and "private_key" not in available:
        raise _fail("private_key is required for this client_auth_method or grant_type.")
    if method not in ("none", "private_key_jwt") and "client_secret" not in available:
        raise _fail(f"client_secret is required with client_auth_method {method}.")


def _redirect_uri(public: dict[str, Any]) -> None:
    value = public.get("redirect_uri")
    if not isinstance(value, str):
        raise _fail("redirect_uri is required.")
    if not _URI_SCHEME_RE.match(value) or _WS_OR_CONTROL_RE.search(value):
        raise _fail("redirect_uri must be an absolute URI.")
    scheme, rest = value.split(":", 1)
    if not rest:
        raise _fail("redirect_uri must be an absolute URI.")
    if scheme.lower() in ("http", "https"):
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if not host:
            raise _fail("redirect_uri must name a host.")


def _keys(public: dict[str, Any], secrets: dict[str, str], method: str, grant: str) -> None:
    needs_key = method == "private_key_jwt" or grant == "jwt_bearer"
    if needs_key:
        if method == "private_key_jwt" and "client_secret" in secrets:
            raise _fail("client_secret is not allowed with client_auth_method private_key_jwt.")
    else:
        for key in ("private_key", "key_id"):
            if key in secrets or key in public:
                raise _fail(f"{key} is only allowed with private_key_jwt or jwt_bearer.")
    private_key = None
    if "private_key" in secrets:
        private_key = load_private_key(secrets["private_key"])
        if private_key is None:
            raise _fail("private_key must be a PEM RSA or EC (P-256/P-384/P-521) private key.")
    if "certificate" in public:
        if method != "private_key_jwt":
            raise _fail("certificate is only allowed with client_auth_method private_key_jwt.")
        text = public["certificate"]
        cert = load_certificate(text) if isinstance(text, str) else None
        if cert is None:
            raise _fail("certificate must be a PEM X.509 certificate.")
        if private_key is not None and _spki(cert.public_key()) != _spki(private_key.public_key()):
            raise _fail("certificate does not match private_key.")
        public["certificate"] = text.strip()


def _common(kind: str, public: dict[str, Any], secrets: dict[str, str]) -> None:
    if "auth_scheme" in public:
        value = public["auth_scheme"]
        if not isinstance(value, str) or not _AUTH_SCHEME_RE.fullmatch(value.strip()):
            raise _fail("auth_scheme must match ^[A-Za-z][A-Za-z0-9-]*$.")
        public["auth_scheme"] = value.strip()
    scheme: str | None = None
    secret_key = ""
    if kind == "bearer_token":
        scheme, secret_key = public.get("auth_scheme", "Bearer"), "bearer_token"
    elif kind == "api_key" and "auth_scheme" in public:
        scheme, secret_key = public["auth_scheme"], "api_key"
    prefixed = scheme is not None and secret_key in secrets
    if prefixed and secrets[secret_key].lower().startswith(f"{scheme} ".lower()):
        raise _fail(f"{secret_key} must not start with {scheme!r}: the gateway adds the scheme.")
    for key in ("forward_caracal_identity", "allow_runtime_injection"):
        if key in public and not isinstance(public[key], bool):
            raise _fail(f"{key} must be true or false.")


# --- keys and certificates -----------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def load_private_key(pem: str) -> PrivateKey | None:
    """An RSA or EC (P-256/384/521) private key from PEM text, else None."""
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _CURVES):
        return key
    return None


def load_certificate(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.strip().encode("utf-8"))
    except ValueError:
        return None


def _spki(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
