"""Outbound HTTP rules (objects.md §1.6, §7 item 36) against real local servers."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from caracal_api.kit.egress import (
    USER_AGENT,
    Egress,
    EgressError,
    EgressPolicy,
    EgressRefused,
    EgressTimeout,
    EgressTooLarge,
    classify_address,
    https_url_problem,
    unwrap,
)
from tests.fixtures.http_servers import LocalServer, Reply


def dev_policy(ca_file: Path, **kw: object) -> EgressPolicy:
    return EgressPolicy(mode="dev", private_hosts=frozenset({"localhost"}), ca_file=ca_file, **kw)  # type: ignore[arg-type]


def fixed_resolver(*addresses: str):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", "public"),
        ("0.0.0.0", "blocked"),
        ("0.1.2.3", "blocked"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("169.254.169.254", "blocked"),
        ("224.0.0.1", "blocked"),
        ("255.255.255.255", "blocked"),
        ("240.0.0.1", "blocked"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "private"),
        ("100.128.0.1", "public"),
        ("172.16.0.1", "private"),
        ("172.32.0.1", "public"),
        ("192.168.1.1", "private"),
        ("::", "blocked"),
        ("::1", "loopback"),
        ("fe80::1", "blocked"),
        ("ff02::1", "blocked"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("2001:4860:4860::8888", "public"),
        ("::ffff:169.254.169.254", "blocked"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:8.8.8.8", "public"),
        ("64:ff9b::a9fe:a9fe", "blocked"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::808:808", "public"),
    ],
)
def test_address_classes(address: str, kind: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) == kind


def test_unwrap() -> None:
    assert unwrap(ipaddress.ip_address("64:ff9b::a9fe:a9fe")) == ipaddress.ip_address(
        "169.254.169.254"
    )
    assert unwrap(ipaddress.ip_address("::ffff:1.2.3.4")) == ipaddress.ip_address("1.2.3.4")


def test_policy_listing_rules() -> None:
    lo = ipaddress.ip_address("127.0.0.1")
    private = ipaddress.ip_address("10.0.0.5")
    meta = ipaddress.ip_address("169.254.169.254")
    dev = EgressPolicy(mode="dev", private_hosts=frozenset({"idp.internal"}))
    prod = EgressPolicy(mode="production", private_hosts=frozenset({"idp.internal"}))
    assert dev.allows("IDP.internal", private)
    assert dev.allows("idp.internal", lo)
    assert not prod.allows("idp.internal", lo)
    assert prod.allows("idp.internal", private)
    assert not dev.allows("other.example", private)
    assert not dev.allows("other.example", lo)
    assert not dev.allows("idp.internal", meta)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://idp.example.com/token", True),
        ("https://idp.example.com:8443/oauth/token?x=1", True),
        ("https://[2001:db8::1]/t", True),
        ("http://idp.example.com/token", False),
        ("https://user:pw@idp.example.com/token", False),
        ("https://user@idp.example.com/token", False),
        ("https:///token", False),
        ("https://exa mple.com/", False),
        ("ftp://x.example/", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_https_url_rule(url: str, ok: bool) -> None:
    assert (https_url_problem(url) is None) is ok


async def test_get_pins_address_and_keeps_sni_and_host(
    local_https: LocalServer, tls_ca_file: Path
) -> None:
    resolver = fixed_resolver("127.0.0.1")
    egress = Egress(dev_policy(tls_ca_file), resolver=resolver)
    response = await egress.get(local_https.url("/.well-known/openid-configuration"))
    assert response.status == 200
    assert response.content_type == "application/json"
    seen = local_https.requests_to("/.well-known/openid-configuration")[-1]
    assert seen.headers["host"] == f"localhost:{local_https.port}"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("caracal-api/")
    assert seen.server_name == "localhost"
    assert resolver.calls == ["localhost"]


async def test_system_resolver_with_localhost(local_https: LocalServer, tls_ca_file: Path) -> None:
    response = await Egress(dev_policy(tls_ca_file)).get(local_https.url("/fail"))
    assert response.status == 500


async def test_post_form_sends_form_content_type(
    local_https: LocalServer, tls_ca_file: Path
) -> None:
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("127.0.0.1"))
    response = await egress.post_form(
        local_https.url("/token"), [("grant_type", "client_credentials"), ("scope", "a b")]
    )
    assert response.status == 200
    seen = local_https.requests_to("/token")[-1]
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form == {"grant_type": "client_credentials", "scope": "a b"}


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"]
)
async def test_unsafe_addresses_refused_before_connecting(
    local_https: LocalServer, tls_ca_file: Path, address: str
) -> None:
    policy = EgressPolicy(mode="dev", private_hosts=frozenset(), ca_file=tls_ca_file)
    egress = Egress(policy, resolver=fixed_resolver(address))
    with pytest.raises(EgressRefused):
        await egress.get(local_https.url("/token"))
    assert local_https.requests == []


async def test_any_unsafe_address_refuses_the_host(
    local_https: LocalServer, tls_ca_file: Path
) -> None:
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("127.0.0.1", "169.254.1.1"))
    with pytest.raises(EgressRefused):
        await egress.get(local_https.url("/token"))
    assert local_https.requests == []


async def test_loopback_refused_in_production_even_when_listed(
    local_https: LocalServer, tls_ca_file: Path
) -> None:
    policy = EgressPolicy(
        mode="production", private_hosts=frozenset({"localhost"}), ca_file=tls_ca_file
    )
    with pytest.raises(EgressRefused):
        await Egress(policy, resolver=fixed_resolver("127.0.0.1")).get(local_https.url("/token"))
    assert local_https.requests == []


async def test_ip_literal_urls_are_checked(local_https: LocalServer, tls_ca_file: Path) -> None:
    egress = Egress(dev_policy(tls_ca_file))
    with pytest.raises(EgressRefused):
        await egress.get(f"https://127.0.0.1:{local_https.port}/token")
    with pytest.raises(EgressRefused):
        await egress.get("https://169.254.169.254/latest/meta-data")


async def test_unresolvable_and_empty(tls_ca_file: Path) -> None:
    with pytest.raises(EgressError, match="resolved"):
        await Egress(dev_policy(tls_ca_file), resolver=fixed_resolver()).get("https://x.test/")
    with pytest.raises(EgressError):
        await Egress(dev_policy(tls_ca_file)).get("https://does-not-exist.invalid/")


async def test_http_and_userinfo_refused_without_network(local_http: LocalServer) -> None:
    egress = Egress(EgressPolicy(mode="dev", private_hosts=frozenset({"localhost"})))
    with pytest.raises(EgressRefused):
        await egress.get(local_http.url("/token"))
    with pytest.raises(EgressRefused):
        await egress.get("https://user:secret@localhost/token")
    assert local_http.requests == []


async def test_redirects_are_not_followed(local_https: LocalServer, tls_ca_file: Path) -> None:
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("127.0.0.1"))
    response = await egress.get(local_https.url("/redirect"))
    assert response.status == 302
    assert local_https.requests_to("/token") == []


async def test_oversize_body_fails(local_https: LocalServer, tls_ca_file: Path) -> None:
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("127.0.0.1"))
    with pytest.raises(EgressTooLarge, match="too large"):
        await egress.get(local_https.url("/big"))


async def test_body_exactly_at_the_cap_passes(local_https: LocalServer, tls_ca_file: Path) -> None:
    local_https.route("GET", "/exact", Reply(200, b"x" * 65536))
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("127.0.0.1"))
    assert len((await egress.get(local_https.url("/exact"))).body) == 65536


async def test_chunked_oversize_fails(local_https: LocalServer, tls_ca_file: Path) -> None:
    # No content-length trusted: the streamed size is what counts.
    local_https.route("GET", "/chunky", Reply(200, b"y" * (64 * 1024 + 1)))
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("127.0.0.1"))
    with pytest.raises(EgressTooLarge):
        await egress.get(local_https.url("/chunky"))


async def test_total_timeout(local_https: LocalServer, tls_ca_file: Path) -> None:
    local_https.slow_seconds = 2.0
    egress = Egress(dev_policy(tls_ca_file, timeout_s=0.5), resolver=fixed_resolver("127.0.0.1"))
    started = time.monotonic()
    with pytest.raises(EgressTimeout):
        await egress.get(local_https.url("/slow"))
    assert time.monotonic() - started < 1.5


async def test_untrusted_certificate_fails_tls(local_https: LocalServer) -> None:
    policy = EgressPolicy(mode="dev", private_hosts=frozenset({"localhost"}))
    with pytest.raises(EgressError, match="TLS"):
        await Egress(policy, resolver=fixed_resolver("127.0.0.1")).get(local_https.url("/token"))
    assert local_https.requests == []


async def test_hostname_mismatch_fails_tls(local_https: LocalServer, tls_ca_file: Path) -> None:
    # The certificate is for localhost; pinning the address must not weaken verification.
    policy = EgressPolicy(mode="dev", private_hosts=frozenset({"evil.test"}), ca_file=tls_ca_file)
    egress = Egress(policy, resolver=fixed_resolver("127.0.0.1"))
    with pytest.raises(EgressError, match="TLS"):
        await egress.get(f"https://evil.test:{local_https.port}/token")


async def test_falls_back_to_the_next_checked_address(
    local_https: LocalServer, tls_ca_file: Path
) -> None:
    # ::1 has no listener here; the next checked address serves the call.
    egress = Egress(dev_policy(tls_ca_file), resolver=fixed_resolver("::1", "127.0.0.1"))
    assert (await egress.get(local_https.url("/fail"))).status == 500


async def test_error_messages_never_carry_secrets(tls_ca_file: Path) -> None:
    egress = Egress(dev_policy(tls_ca_file))
    with pytest.raises(EgressError) as info:
        await egress.get("https://client:s3cr3t-value@localhost/token")
    assert "s3cr3t" not in str(info.value)
