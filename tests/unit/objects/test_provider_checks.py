"""OAuth connectivity checks and discovery against a real local HTTPS server
(objects.md §3.4, P7; §7 items 35, 36, 38)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from caracal_api.kit.egress import Egress, EgressPolicy
from caracal_api.providers.config import split
from caracal_api.providers.discovery import (
    DiscoveryFailed,
    IssuerInvalid,
    check_issuer,
    discover,
    metadata_urls,
)
from caracal_api.providers.oauth import check_connectivity
from tests.fixtures.http_servers import LocalServer, Reply

CC = "oauth2_client_credentials"
AC = "oauth2_authorization_code"


@pytest.fixture
def egress(tls_ca_file: Path) -> Egress:
    return Egress(
        EgressPolicy(mode="dev", private_hosts=frozenset({"localhost"}), ca_file=tls_ca_file)
    )


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    h, p, s = token.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), f"{h}.{p}".encode(), b64d(s)


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def config(kind: str, server: LocalServer, **extra: Any) -> tuple[dict[str, Any], dict[str, str]]:
    base: dict[str, Any] = {"token_endpoint": server.url("/token"), "client_id": "cid"}
    if kind == AC:
        base |= {
            "authorization_endpoint": server.url("/authorize"),
            "redirect_uri": "https://app.example.test/cb",
        }
    out = split(kind, base | extra, secrets_required=True)
    return out.public, out.secrets


async def test_ok_with_basic_auth(local_https: LocalServer, egress: Egress) -> None:
    public, secrets = config(CC, local_https, client_secret="s3", scopes=["a", "b"], audience="api")
    result = await check_connectivity(egress, CC, public, secrets)
    assert result.status == "ok"
    seen = local_https.requests_to("/token")[-1]
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"cid:s3").decode()
    assert seen.form == {"grant_type": "client_credentials", "scope": "a b", "audience": "api"}
    assert "s3" not in result.detail
    assert result.as_dict()["checked_at"].endswith("Z")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(400, {"error": "invalid_client"}), "auth_failed"),
        (Reply(401, {"error": "server_says_no"}), "auth_failed"),
        (Reply(401, b""), "auth_failed"),
        (Reply(400, {"error": "unauthorized_client"}), "auth_failed"),
        (Reply(400, {"error": "invalid_scope"}), "config_error"),
        (Reply(400, {"error": "invalid_target"}), "config_error"),
        (Reply(400, {"error": "invalid_grant"}), "endpoint_error"),
        (Reply(500, b"oops"), "endpoint_error"),
        (Reply(200, {"token_type": "bearer"}), "endpoint_error"),
        (Reply(200, {"access_token": 5}), "endpoint_error"),
        (Reply(200, b"error=invalid_client&error_description=no"), "auth_failed"),
        (Reply(200, b"error=invalid_scope"), "config_error"),
        (Reply(200, b"access_token=abc&token_type=bearer"), "ok"),
        (Reply(302, b"", {"location": "/token"}), "endpoint_error"),
    ],
)
async def test_classification(
    local_https: LocalServer, egress: Egress, reply: Reply, status: str
) -> None:
    local_https.route("POST", "/token", reply)
    public, secrets = config(CC, local_https, client_secret="s3")
    result = await check_connectivity(egress, CC, public, secrets)
    assert result.status == status, result.detail


async def test_endpoint_error_detail_names_status_and_code(
    local_https: LocalServer, egress: Egress
) -> None:
    local_https.route("POST", "/token", Reply(403, {"error": "access_denied"}))
    public, secrets = config(CC, local_https, client_secret="s3")
    result = await check_connectivity(egress, CC, public, secrets)
    assert result.detail == "The token endpoint responded with HTTP 403 (access_denied)."


async def test_authorization_code_placeholder(local_https: LocalServer, egress: Egress) -> None:
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_grant"}))
    public, secrets = config(
        AC, local_https, client_secret="s3", client_auth_method="client_secret_post"
    )
    result = await check_connectivity(egress, AC, public, secrets)
    assert result.status == "ok"
    form = local_https.requests_to("/token")[-1].form
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "caracal-connection-test"
    assert form["code_verifier"] == "caracal-connection-test-code-verifier-0123456789abcdefghijklmn"
    assert form["redirect_uri"] == "https://app.example.test/cb"
    assert form["client_id"] == "cid"
    assert form["client_secret"] == "s3"
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_client"}))
    assert (await check_connectivity(egress, AC, public, secrets)).status == "auth_failed"
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_scope"}))
    assert (await check_connectivity(egress, AC, public, secrets)).status == "endpoint_error"


async def test_token_params_override(local_https: LocalServer, egress: Egress) -> None:
    public, secrets = config(
        CC,
        local_https,
        client_secret="s3",
        audience="a1",
        token_params={"audience": "a2", "x": "y"},
    )
    await check_connectivity(egress, CC, public, secrets)
    form = local_https.requests_to("/token")[-1].form
    assert form["audience"] == "a2"
    assert form["x"] == "y"


async def test_private_key_jwt_assertion_verifies(local_https: LocalServer, egress: Egress) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    public, secrets = config(
        CC, local_https, client_auth_method="private_key_jwt", private_key=pem(key),
        key_id="kid-1", certificate=cert_pem,
    )  # fmt: skip
    assert (await check_connectivity(egress, CC, public, secrets)).status == "ok"
    form = local_https.requests_to("/token")[-1].form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["client_id"] == "cid"
    header, claims, signing_input, signature = jwt_parts(form["client_assertion"])
    key.public_key().verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert header["alg"] == "RS256"
    assert header["kid"] == "kid-1"
    assert b64d(header["x5t#S256"]) == hashlib.sha256(der).digest()
    assert b64d(header["x5t"]) == hashlib.sha1(der, usedforsecurity=False).digest()
    assert claims["iss"] == "cid"
    assert claims["sub"] == "cid"
    assert claims["aud"] == local_https.url("/token")
    assert claims["exp"] - claims["iat"] == 60
    assert "authorization" not in local_https.requests_to("/token")[-1].headers


@pytest.mark.parametrize(
    ("curve", "alg", "size"), [(ec.SECP256R1(), "ES256", 32), (ec.SECP521R1(), "ES512", 66)]
)
async def test_jwt_bearer_scope_inside_jwt_only(
    local_https: LocalServer, egress: Egress, curve: ec.EllipticCurve, alg: str, size: int
) -> None:
    key = ec.generate_private_key(curve)
    public, secrets = config(
        CC, local_https, grant_type="jwt_bearer", private_key=pem(key), scopes=["r", "w"],
        assertion_subject="user-1",
    )  # fmt: skip
    assert (await check_connectivity(egress, CC, public, secrets)).status == "ok"
    form = local_https.requests_to("/token")[-1].form
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert "scope" not in form
    assert form["client_id"] == "cid"  # method none
    header, claims, signing_input, signature = jwt_parts(form["assertion"])
    assert header["alg"] == alg
    assert claims["scope"] == "r w"
    assert claims["sub"] == "user-1"
    assert claims["exp"] - claims["iat"] == 300
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    digest = {"ES256": hashes.SHA256(), "ES512": hashes.SHA512()}[alg]
    key.public_key().verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))


async def test_jwt_bearer_invalid_grant_is_auth_failed(
    local_https: LocalServer, egress: Egress
) -> None:
    local_https.route("POST", "/token", Reply(400, {"error": "invalid_grant"}))
    public, secrets = config(
        CC,
        local_https,
        grant_type="jwt_bearer",
        private_key=pem(ec.generate_private_key(ec.SECP256R1())),
    )
    assert (await check_connectivity(egress, CC, public, secrets)).status == "auth_failed"


async def test_host_outside_allow_list_is_config_error_without_request(
    local_https: LocalServer, egress: Egress
) -> None:
    public, secrets = config(
        CC, local_https, client_secret="s", allowed_token_hosts=["idp.example.com"]
    )
    result = await check_connectivity(egress, CC, public, secrets)
    assert result.status == "config_error"
    assert "allowed_token_hosts" in result.detail
    assert local_https.requests == []


async def test_incomplete_client_is_config_error(local_https: LocalServer, egress: Egress) -> None:
    public, _ = config(CC, local_https, client_secret="s")
    result = await check_connectivity(egress, CC, public, {})
    assert result.status == "config_error"
    assert result.detail == "The provider client configuration is incomplete."


async def test_unreachable(local_https: LocalServer, tls_ca_file: Path) -> None:
    strict = Egress(EgressPolicy(mode="dev", private_hosts=frozenset(), ca_file=tls_ca_file))
    public, secrets = config(CC, local_https, client_secret="s")
    result = await check_connectivity(strict, CC, public, secrets)
    assert result.status == "unreachable"
    assert local_https.requests == []


# --- discovery -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.example.com",
        "https://user:pw@idp.example.com",
        "https://idp.example.com/?x=1",
        "https://idp.example.com/#f",
        "garbage",
        "https://",
    ],
)
def test_invalid_issuers(issuer: str) -> None:
    with pytest.raises(IssuerInvalid):
        check_issuer(issuer)


def test_metadata_urls() -> None:
    assert metadata_urls("https://idp.example.com/tenant/v2//") == [
        "https://idp.example.com/tenant/v2/.well-known/openid-configuration",
        "https://idp.example.com/.well-known/oauth-authorization-server/tenant/v2",
    ]


async def test_discovery_success_filters(local_https: LocalServer, egress: Egress) -> None:
    result = await discover(egress, local_https.base_url + "/")
    assert result["issuer"] == local_https.base_url
    assert result["token_endpoint"] == local_https.url("/token")
    assert result["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "private_key_jwt",
    ]  # fmt: skip
    assert result["scopes_supported"] == ["openid", "profile", "email"]


async def test_discovery_falls_back_to_rfc8414(local_https: LocalServer, egress: Egress) -> None:
    local_https.route("GET", "/.well-known/openid-configuration", Reply(404, b""))
    doc = local_https.discovery_document()
    doc["token_endpoint_auth_methods_supported"] = ["tls_client_auth"]
    doc["scopes_supported"] = [" ", "x" * 201, 5, "ok"]
    doc["revocation_endpoint"] = "http://insecure.example/revoke"
    local_https.route("GET", "/.well-known/oauth-authorization-server", Reply(200, doc))
    result = await discover(egress, local_https.base_url)
    assert "token_endpoint_auth_methods_supported" not in result
    assert "revocation_endpoint" not in result
    assert result["scopes_supported"] == ["ok"]


async def test_discovery_issuer_mismatch(local_https: LocalServer, egress: Egress) -> None:
    doc = local_https.discovery_document(issuer="https://someone-else.example")
    local_https.route("GET", "/.well-known/openid-configuration", Reply(200, doc))
    with pytest.raises(DiscoveryFailed, match="does not match"):
        await discover(egress, local_https.base_url)


@pytest.mark.parametrize(
    ("reply", "message"),
    [(Reply(404, b""), "no authorization server"), (Reply(200, b"{not json"), "not valid JSON")],
)
async def test_discovery_failures(
    local_https: LocalServer, egress: Egress, reply: Reply, message: str
) -> None:
    local_https.route("GET", "/.well-known/openid-configuration", reply)
    local_https.route("GET", "/.well-known/oauth-authorization-server", reply)
    with pytest.raises(DiscoveryFailed, match=message):
        await discover(egress, local_https.base_url)


async def test_discovery_rejects_http_token_endpoint(
    local_https: LocalServer, egress: Egress
) -> None:
    doc = local_https.discovery_document()
    doc["token_endpoint"] = "http://x.example/token"
    local_https.route("GET", "/.well-known/openid-configuration", Reply(200, doc))
    with pytest.raises(DiscoveryFailed, match="token_endpoint"):
        await discover(egress, local_https.base_url)
