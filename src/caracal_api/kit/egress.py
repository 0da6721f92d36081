"""Outbound HTTP to provider endpoints (objects.md §1.6).

Every call resolves the host once, refuses it when *any* address is unsafe, then connects
to a checked address (never resolving again) while TLS SNI, certificate verification and
the `Host` header use the hostname. That pinning is what closes DNS-rebinding: httpx gets a
URL whose host is the checked IP literal plus the `sni_hostname` request extension, which
httpcore passes to the TLS handshake as `server_hostname`.

Limits: `https` only, 15 s for the whole call (DNS included), 64 KiB of body, no redirects
(a 3xx is returned like any other status), no proxies from the environment. Failures raise
`EgressError` with a short message that never contains a secret.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from caracal_api.config import Settings

MAX_BODY_BYTES = 64 * 1024
TOTAL_TIMEOUT_S = 15.0
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

try:
    _VERSION = metadata.version("caracal-api")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    _VERSION = "0.0.0"
USER_AGENT = f"caracal-api/{_VERSION}"

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9])?$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_V4_ALWAYS = tuple(ipaddress.IPv4Network(n) for n in ("0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"))
_V4_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_V4_PRIVATE = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")
)
_V6_ALWAYS = tuple(ipaddress.IPv6Network(n) for n in ("::/128", "fe80::/10", "ff00::/8"))
_V6_LOOPBACK = ipaddress.IPv6Network("::1/128")
_V6_PRIVATE = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class EgressError(Exception):
    """An outbound call that did not produce a response. `str()` is safe to show."""


class EgressRefused(EgressError):
    """Refused before any connection: bad URL or an unsafe address."""


class EgressTimeout(EgressError):
    pass


class EgressTooLarge(EgressError):
    pass


@dataclass(frozen=True)
class EgressPolicy:
    """The settings §1.6 depends on; `timeout_s`/`max_body_bytes` exist for tests."""

    mode: str = "production"
    private_hosts: frozenset[str] = frozenset()
    ca_file: Path | None = None
    timeout_s: float = TOTAL_TIMEOUT_S
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        return cls(
            mode=settings.mode,
            private_hosts=frozenset(h.lower() for h in settings.private_egress_hosts),
            ca_file=settings.egress_ca_file,
        )

    def allows(self, host: str, address: IPAddress) -> bool:
        kind = classify_address(address)
        if kind == "public":
            return True
        listed = host.lower() in self.private_hosts
        if kind == "private":
            return listed
        if kind == "loopback":
            return listed and self.mode == "dev"
        return False


@dataclass
class EgressResponse:
    status: int
    headers: httpx.Headers
    body: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def unwrap(address: IPAddress) -> IPAddress:
    """IPv4-mapped and NAT64 addresses are judged as the IPv4 address they carry."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def classify_address(address: IPAddress) -> str:
    """`public`, `private`, `loopback` or `blocked` (never allowed)."""
    address = unwrap(address)
    if isinstance(address, ipaddress.IPv4Address):
        if any(address in n for n in _V4_ALWAYS):
            return "blocked"
        if address in _V4_LOOPBACK:
            return "loopback"
        if any(address in n for n in _V4_PRIVATE):
            return "private"
        return "public"
    if any(address in n for n in _V6_ALWAYS):
        return "blocked"
    if address in _V6_LOOPBACK:
        return "loopback"
    if address in _V6_PRIVATE:
        return "private"
    return "public"


def https_url_problem(url: str) -> str | None:
    """Why `url` is not an absolute https URL with a host and no userinfo (None when it is)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "is not a valid URL"
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return "must not contain whitespace or control characters"
    if parsed.scheme != "https":
        return "must use https"
    if not parsed.raw_host:
        return "must name a host"
    if parsed.userinfo:
        return "must not contain user information"
    if _host_literal(parsed) is None and not _HOSTNAME_RE.fullmatch(_host_text(parsed)):
        return "has an invalid host"
    return None


def _host_text(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii", "replace")


def _host_literal(url: httpx.URL) -> IPAddress | None:
    try:
        return ipaddress.ip_address(_host_text(url))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """A and AAAA addresses of `host`, in resolver order, deduplicated."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in seen:
            seen.append(addr)
    return seen


class Egress:
    """Outbound HTTP under one policy. Cheap to keep; the TLS context is built once."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or system_resolver
        self._ssl: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            if self.policy.ca_file is not None:
                context.load_verify_locations(cafile=str(self.policy.ca_file))
            self._ssl = context
        return self._ssl

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> EgressResponse:
        return await self.request("GET", url, headers=headers)

    async def post_form(
        self,
        url: str,
        form: Sequence[tuple[str, str]] | Mapping[str, str],
        headers: Mapping[str, str] | None = None,
    ) -> EgressResponse:
        merged = {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})}
        items = list(form.items()) if isinstance(form, Mapping) else list(form)
        body = urlencode(items).encode("ascii")
        return await self.request("POST", url, headers=merged, content=body)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> EgressResponse:
        problem = https_url_problem(url)
        if problem is not None:
            raise EgressRefused(f"The URL {problem}.")
        parsed = httpx.URL(url)
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                addresses = await self._checked_addresses(parsed)
                return await self._send(method, parsed, addresses, headers, content)
        except TimeoutError:
            raise EgressTimeout("The request timed out.") from None

    async def _checked_addresses(self, url: httpx.URL) -> list[IPAddress]:
        host = _host_text(url)
        literal = _host_literal(url)
        if literal is not None:
            found = [literal]
        else:
            try:
                raw = await self._resolver(host, url.port or 443)
            except (OSError, UnicodeError):
                raise EgressError("The host name could not be resolved.") from None
            found = []
            for text in raw:
                try:
                    found.append(ipaddress.ip_address(text))
                except ValueError:
                    raise EgressError("The host name resolved to an invalid address.") from None
        if not found:
            raise EgressError("The host name could not be resolved.")
        if not all(self.policy.allows(host, a) for a in found):
            raise EgressRefused("The host resolves to an address that is not allowed.")
        return found

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        addresses: list[IPAddress],
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> EgressResponse:
        request_headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            **(headers or {}),
            "Host": url.netloc.decode("ascii"),
        }
        extensions: dict[str, Any] = {}
        if _host_literal(url) is None:
            extensions["sni_hostname"] = _host_text(url)
        last = "The connection to the host failed."
        async with httpx.AsyncClient(
            verify=self.ssl_context(),
            trust_env=False,
            follow_redirects=False,
            timeout=self.policy.timeout_s,
        ) as client:
            for address in addresses:
                target = url.copy_with(host=str(address))
                request = client.build_request(
                    method,
                    target,
                    headers=request_headers,
                    content=content,
                    extensions=extensions,
                )
                try:
                    return await self._exchange(client, request)
                except httpx.ConnectError as exc:
                    last = _connect_message(exc)
                except httpx.TimeoutException:
                    raise EgressTimeout("The request timed out.") from None
                except httpx.HTTPError:
                    raise EgressError("The HTTP exchange with the host failed.") from None
        raise EgressError(last)

    async def _exchange(self, client: httpx.AsyncClient, request: httpx.Request) -> EgressResponse:
        response = await client.send(request, stream=True)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.policy.max_body_bytes:
                raise EgressTooLarge("The response is too large.")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.policy.max_body_bytes:
                    raise EgressTooLarge("The response is too large.")
                chunks.append(chunk)
        finally:
            await response.aclose()
        return EgressResponse(response.status_code, response.headers, b"".join(chunks))


def _connect_message(exc: httpx.ConnectError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return "The TLS handshake with the host failed."
        cause = cause.__cause__ or cause.__context__
    return "The connection to the host failed."


def egress_of(runtime: Any) -> Egress:
    """The process's Egress, built once from its settings (`Runtime.services`)."""
    return runtime.service("egress", lambda: Egress(EgressPolicy.from_settings(runtime.settings)))
