"""Compact JWS signing for client assertions (objects.md §3.4 "JWT signing").

RSA keys sign RS256; EC P-256/P-384/P-521 keys sign ES256/ES384/ES512 with the raw
`r ‖ s` signature JOSE requires (not DER).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from caracal_api.providers.config import PrivateKey, load_certificate

_EC_ALGS: dict[str, tuple[str, hashes.HashAlgorithm, int]] = {
    "secp256r1": ("ES256", hashes.SHA256(), 32),
    "secp384r1": ("ES384", hashes.SHA384(), 48),
    "secp521r1": ("ES512", hashes.SHA512(), 66),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def algorithm_for(key: PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return _EC_ALGS[key.curve.name][0]


def certificate_thumbprints(certificate_pem: str) -> dict[str, str]:
    """`x5t` (SHA-1) and `x5t#S256` (SHA-256) of the certificate's DER, base64url."""
    cert = load_certificate(certificate_pem)
    if cert is None:
        return {}
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "x5t": b64url(hashlib.sha1(der, usedforsecurity=False).digest()),
        "x5t#S256": b64url(hashlib.sha256(der).digest()),
    }


def sign(
    key: PrivateKey,
    claims: dict[str, Any],
    *,
    kid: str | None = None,
    certificate_pem: str | None = None,
) -> str:
    header: dict[str, Any] = {"alg": algorithm_for(key), "typ": "JWT"}
    if kid:
        header["kid"] = kid
    if certificate_pem:
        header.update(certificate_thumbprints(certificate_pem))
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    ).encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        _, digest, size = _EC_ALGS[key.curve.name]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return signing_input.decode("ascii") + "." + b64url(signature)
