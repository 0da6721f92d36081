"""Secret-store errors."""

from __future__ import annotations

from caracal_api.errors import BadGateway


class SecretBackendUnavailable(BadGateway):
    code = "secret_backend_unavailable"
    description = "A stored secret could not be opened; check the secret-store keys."
