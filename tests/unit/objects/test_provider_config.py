"""Provider config contract and identifiers (objects.md §3.2, §3.3; §7 items 25-30)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from caracal_api.providers.config import (
    InvalidProviderConfig,
    SplitConfig,
    is_safe_header_name,
    split,
)
from caracal_api.providers.identifiers import (
    candidates,
    generated_base,
    is_reserved,
    is_valid_identifier,
    slugify,
)


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def cert_for(key: Any) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

CC = {"token_endpoint": "https://idp.example.com/oauth/token", "client_id": "client-1"}
AC = {
    "authorization_endpoint": "https://idp.example.com/authorize",
    "token_endpoint": "https://idp.example.com/token",
    "redirect_uri": "https://app.example.com/callback",
    "client_id": "client-1",
}


def ok(kind: str, config: dict[str, Any], **kw: Any) -> SplitConfig:
    kw.setdefault("secrets_required", True)
    return split(kind, config, **kw)


def bad(kind: str, config: dict[str, Any], **kw: Any) -> str:
    kw.setdefault("secrets_required", True)
    with pytest.raises(InvalidProviderConfig) as info:
        split(kind, config, **kw)
    assert info.value.status == 400
    assert info.value.code == "invalid_provider_config"
    return info.value.error_description


# --- kinds -------------------------------------------------------------------------------


def test_api_key_header_default_written() -> None:
    out = ok("api_key", {"header_name": " X-Api-Key ", "api_key": "  k-123  "})
    assert out.public == {"auth_location": "header", "header_name": "X-Api-Key"}
    assert out.secrets == {"api_key": "k-123"}
    assert out.secret_keys == ["api_key"]


def test_api_key_query_placement() -> None:
    out = ok("api_key", {"auth_location": "query", "query_param_name": "key", "api_key": "k"})
    assert out.public == {"auth_location": "query", "query_param_name": "key"}
    assert "auth_scheme" in bad(
        "api_key",
        {"auth_location": "query", "query_param_name": "key", "api_key": "k", "auth_scheme": "X"},
    )


def test_bearer_and_basic_and_none() -> None:
    assert ok("bearer_token", {"bearer_token": "abc"}).secret_keys == ["bearer_token"]
    basic = ok("http_basic", {"username": " alice ", "password": "pw"})
    assert basic.public == {"username": "alice"}
    assert basic.secret_keys == ["password"]
    assert ok("none", {}).public == {}
    assert ok("caracal_mandate", {}).secrets == {}


@pytest.mark.parametrize("kind", ["none", "caracal_mandate"])
@pytest.mark.parametrize("key", ["api_key", "client_secret", "anything"])
def test_no_keys_on_none_kinds(kind: str, key: str) -> None:
    assert key in bad(kind, {key: "x"})


def test_client_credentials_defaults_written() -> None:
    out = ok(CC_KIND, {**CC, "client_secret": "s3cret"})
    assert out.public["allowed_token_hosts"] == ["idp.example.com"]
    assert out.public["grant_type"] == "client_credentials"
    assert out.public["client_auth_method"] == "client_secret_basic"
    assert out.secret_keys == ["client_secret"]
    assert "client_secret" not in out.public


CC_KIND = "oauth2_client_credentials"
AC_KIND = "oauth2_authorization_code"


def test_public_client_needs_no_secret() -> None:
    out = ok(AC_KIND, {**AC, "client_auth_method": "none"})
    assert out.secrets == {}
    assert out.public["client_auth_method"] == "none"


def test_private_key_jwt_stores_key_id_and_seals_key() -> None:
    out = ok(
        CC_KIND,
        {
            **CC,
            "client_auth_method": "private_key_jwt",
            "key_id": " k1 ",
            "private_key": pem(EC_KEY),
        },
    )
    assert out.public["key_id"] == "k1"
    assert out.secret_keys == ["private_key"]


def test_private_key_jwt_with_matching_certificate() -> None:
    cert = cert_for(RSA_KEY)
    out = ok(
        CC_KIND,
        {
            **CC,
            "client_auth_method": "private_key_jwt",
            "private_key": pem(RSA_KEY),
            "certificate": "\n" + cert + "\n",
        },
    )
    assert out.public["certificate"] == cert.strip()


def test_jwt_bearer_defaults_method_to_none() -> None:
    out = ok(CC_KIND, {**CC, "grant_type": "jwt_bearer", "private_key": pem(EC_KEY)})
    assert out.public["client_auth_method"] == "none"
    assert out.public["grant_type"] == "jwt_bearer"


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("api_key", {"header_name": "X-Key"}),  # missing key
        ("api_key", {"api_key": "k"}),  # missing header name
        ("api_key", {"header_name": "Host", "api_key": "k"}),
        ("api_key", {"header_name": "x-caracal-foo", "api_key": "k"}),
        ("api_key", {"header_name": "X Key", "api_key": "k"}),
        ("api_key", {"header_name": "X-Key", "api_key": "k", "nope": 1}),
        ("api_key", {"header_name": "X-Key", "api_key": "   "}),
        ("api_key", {"header_name": "X-Key", "api_key": 5}),
        ("api_key", {"header_name": "X-Key", "api_key": "a\nb"}),
        ("api_key", {"header_name": "X-Key", "api_key": "a\x7fb"}),
        ("api_key", {"auth_location": "cookie", "api_key": "k"}),
        ("api_key", {"auth_location": "query", "api_key": "k", "query_param_name": "a b"}),
        ("api_key", {"header_name": "X-Key", "api_key": "k", "allowed_token_hosts": []}),
        ("api_key", {"header_name": "X-Key", "api_key": "k", "allowed_token_hosts": ["a..b"]}),
        ("api_key", {"header_name": "X-Key", "api_key": "k", "allowed_token_hosts": ["-a"]}),
        (
            "api_key",
            {"header_name": "X-Key", "api_key": "k", "auth_scheme": "Token"}
            | {"api_key": "token abc"},
        ),
        ("api_key", {"header_name": "X-Key", "api_key": "k", "forward_caracal_identity": "yes"}),
        ("bearer_token", {"bearer_token": "Bearer abc"}),
        ("bearer_token", {"bearer_token": "bearer abc"}),
        ("bearer_token", {"bearer_token": "Token abc", "auth_scheme": "Token"}),
        ("bearer_token", {"bearer_token": "abc", "header_name": "X"}),
        ("bearer_token", {"bearer_token": "abc", "auth_header": "Content-Length"}),
        ("bearer_token", {"bearer_token": "abc", "auth_scheme": "1bad"}),
        ("bearer_token", {}),
        ("http_basic", {"password": "pw"}),
        ("http_basic", {"username": "  ", "password": "pw"}),
        ("http_basic", {"username": "u"}),
        ("http_basic", {"username": "u", "password": "p", "allow_runtime_injection": True}),
        (CC_KIND, {**CC, "token_endpoint": "http://idp.example.com/token", "client_secret": "s"}),
        (CC_KIND, {**CC, "token_endpoint": "https://u:p@idp.example.com/t", "client_secret": "s"}),
        (CC_KIND, {**CC, "client_id": " ", "client_secret": "s"}),
        (CC_KIND, {"token_endpoint": CC["token_endpoint"], "client_secret": "s"}),
        (CC_KIND, CC),  # OAuth without secret
        (CC_KIND, {**CC, "client_secret": "s", "grant_type": "password"}),
        (CC_KIND, {**CC, "client_secret": "s", "client_auth_method": "tls_client_auth"}),
        (CC_KIND, {**CC, "client_secret": "s", "client_auth_method": None}),
        (CC_KIND, {**CC, "client_secret": "s", "scopes": []}),
        (CC_KIND, {**CC, "client_secret": "s", "scopes": ["a", " "]}),
        (CC_KIND, {**CC, "client_secret": "s", "allowed_token_hosts": []}),
        (CC_KIND, {**CC, "client_secret": "s", "token_params": {"scope": "x"}}),
        (CC_KIND, {**CC, "client_secret": "s", "token_params": {"client_id": "x"}}),
        (CC_KIND, {**CC, "client_secret": "s", "token_params": {"a b": "x"}}),
        (CC_KIND, {**CC, "client_secret": "s", "token_params": {"a": " "}}),
        (CC_KIND, {**CC, "client_secret": "s", "token_params": ["a"]}),
        (CC_KIND, {**CC, "client_secret": "s", "private_key": pem(EC_KEY)}),
        (CC_KIND, {**CC, "client_secret": "s", "key_id": "k"}),
        (CC_KIND, {**CC, "client_secret": "s", "certificate": cert_for(EC_KEY)}),
        (CC_KIND, {**CC, "client_secret": "s", "assertion_subject": "x"}),
        (CC_KIND, {**CC, "grant_type": "jwt_bearer", "private_key": pem(EC_KEY), "audience": "a"}),
        (CC_KIND, {**CC, "grant_type": "jwt_bearer"}),
        (
            CC_KIND,
            {
                **CC,
                "grant_type": "jwt_bearer",
                "private_key": pem(EC_KEY),
                "client_auth_method": "private_key_jwt",
            },
        ),
        (CC_KIND, {**CC, "client_auth_method": "private_key_jwt", "private_key": "not a pem"}),
        (
            CC_KIND,
            {
                **CC,
                "client_auth_method": "private_key_jwt",
                "private_key": pem(ed25519.Ed25519PrivateKey.generate()),
            },
        ),
        (
            CC_KIND,
            {
                **CC,
                "client_auth_method": "private_key_jwt",
                "private_key": pem(EC_KEY),
                "client_secret": "s",
            },
        ),
        (
            CC_KIND,
            {
                **CC,
                "client_auth_method": "private_key_jwt",
                "private_key": pem(EC_KEY),
                "certificate": cert_for(OTHER_EC_KEY),
            },
        ),
        (
            CC_KIND,
            {
                **CC,
                "client_auth_method": "private_key_jwt",
                "private_key": pem(EC_KEY),
                "certificate": "junk",
            },
        ),
        (CC_KIND, {**CC, "client_auth_method": "private_key_jwt"}),
        (AC_KIND, {**AC, "client_secret": "s", "grant_type": "client_credentials"}),
        (AC_KIND, {**AC, "client_secret": "s", "private_key": pem(EC_KEY)}),
        (AC_KIND, {**AC, "client_auth_method": "private_key_jwt"}),
        (AC_KIND, {**AC, "client_secret": "s", "redirect_uri": "/callback"}),
        (AC_KIND, {**AC, "client_secret": "s", "redirect_uri": "https:///cb"}),
        (AC_KIND, {**AC, "client_secret": "s", "redirect_uri": "app cb:x"}),
        (
            AC_KIND,
            {**AC, "client_secret": "s", "authorization_endpoint": "http://idp.example.com/a"},
        ),
        (AC_KIND, {**AC, "client_secret": "s", "revocation_endpoint": "http://idp.example.com/r"}),
        (AC_KIND, {**AC, "client_secret": "s", "authorization_params": {"state": "x"}}),
        (AC_KIND, {**AC, "client_secret": "s", "authorization_params": {"response_type": "x"}}),
        (AC_KIND, {**AC, "client_secret": "s", "auth_header": "x-forwarded-for"}),
        (AC_KIND, {**AC, "client_secret": "s", "allow_runtime_injection": True}),
        (AC_KIND, {k: v for k, v in AC.items() if k != "redirect_uri"} | {"client_secret": "s"}),
    ],
)
def test_invalid_configs(kind: str, config: dict[str, Any]) -> None:
    message = bad(kind, config)
    for secret in ("s3cret", "abc", "token abc"):
        if secret in str(config.get("api_key", "")) + str(config.get("bearer_token", "")):
            assert secret not in message or "must not start" in message


def test_unsupported_keys_are_listed() -> None:
    message = bad(AC_KIND, {**AC, "client_secret": "s", "grant_type": "x", "private_key": "y"})
    assert "grant_type" in message
    assert "private_key" in message


def test_secrets_are_trimmed_and_multiline_private_key_allowed() -> None:
    out = ok("http_basic", {"username": "u", "password": "  p w  "})
    assert out.secrets["password"] == "p w"
    key = "\n\n" + pem(EC_KEY) + "\n"
    out = ok(CC_KIND, {**CC, "client_auth_method": "private_key_jwt", "private_key": key})
    assert out.secrets["private_key"] == key.strip()


def test_schemeless_api_key_starting_with_bearer_accepted() -> None:
    assert ok("api_key", {"header_name": "X-Key", "api_key": "Bearer abc"}).secrets == {
        "api_key": "Bearer abc"
    }


def test_params_trimmed_and_hosts_normalised() -> None:
    out = ok(
        CC_KIND,
        {**CC, "client_secret": "s", "token_params": {"audience_hint": " x "}, "audience": " a "},
    )
    assert out.public["token_params"] == {"audience_hint": "x"}
    assert out.public["audience"] == "a"
    basic = ok(
        "http_basic",
        {"username": "u", "password": "p", "allowed_token_hosts": [" API.Example.com "]},
    )
    assert basic.public["allowed_token_hosts"] == ["api.example.com"]
    explicit = ok(CC_KIND, {**CC, "client_secret": "s", "allowed_token_hosts": ["IDP.example.com"]})
    assert explicit.public["allowed_token_hosts"] == ["IDP.example.com"]


def test_size_caps() -> None:
    assert "2048" in bad("http_basic", {"username": "u" * 2049, "password": "p"})
    assert "16384" in bad("http_basic", {"username": "u", "password": "p" * 16385})
    ok("http_basic", {"username": "u", "password": " " + "p" * 16384 + " "})
    too_many = {f"k{i}": 1 for i in range(65)}
    assert "64" in bad("bearer_token", {"bearer_token": "t", **too_many})
    nested = {"token_params": {"a": "x" * 2049}}
    assert "2048" in bad(CC_KIND, {**CC, "client_secret": "s", **nested})
    many_scopes = {"scopes": ["s" * 2000] * 40}
    assert "65536" in bad(CC_KIND, {**CC, "client_secret": "s", **many_scopes})


def test_patch_without_kind_uses_stored_secret_keys() -> None:
    # secrets optional, stored client_secret satisfies the rule
    out = split(CC_KIND, {**CC}, secrets_required=False, stored_secret_keys=["client_secret"])
    assert out.secrets == {}
    bad(CC_KIND, {**CC}, secrets_required=False, stored_secret_keys=[])
    # non-OAuth kinds do not need the secret on a config-only change
    assert split("api_key", {"header_name": "X-K"}, secrets_required=False).secrets == {}


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("X-Api-Key", True),
        ("Authorization", True),
        ("", False),
        ("HOST", False),
        ("Transfer-Encoding", False),
        ("X-Caracal-Anything", False),
        ("X-Forwarded-Host", False),
        ("proxy-foo", False),
        ("traceparent", False),
    ],
)
def test_safe_header_names(name: str, safe: bool) -> None:
    assert is_safe_header_name(name) is safe


# --- identifiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "valid"),
    [
        ("provider://weather", True),
        ("provider://weather-acc-2", True),
        ("provider://a1", True),
        ("Provider://Upper", False),
        ("provider://Upper", False),
        ("https://not-a-provider", False),
        ("provider://ünï", False),
        ("provider://a--b", False),
        ("provider://-a", False),
        ("provider://", False),
        ("provider://" + "a" * 502, False),
        ("provider://" + "a" * 501, True),
    ],
)
def test_identifier_pattern(identifier: str, valid: bool) -> None:
    assert is_valid_identifier(identifier) is valid


def test_generated_identifiers() -> None:
    assert generated_base("Weather Acc. (EU)", "api_key") == "provider://weather-acc-eu"
    assert generated_base(None, "api_key") == "provider://api-key-provider"
    assert generated_base("provider://Thing", "none") == "provider://thing"
    assert generated_base("ÜÜÜ", "none") == "provider://provider"
    items = list(candidates("provider://x"))
    assert items[:3] == ["provider://x", "provider://x-2", "provider://x-3"]
    assert items[998] == "provider://x-999"
    assert len(items) == 1000
    assert len(items[-1]) == len("provider://x-") + 32


def test_reserved_and_slugify() -> None:
    assert is_reserved(" Provider://CARACAL-SYS-x ")
    assert not is_reserved("provider://my-caracal-sys-x")
    assert slugify("  Hello,  World!! ", "zone") == "hello-world"
    assert slugify("---", "zone") == "zone"
