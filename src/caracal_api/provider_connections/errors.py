"""Provider-connection errors (objects.md §6)."""

from __future__ import annotations

from caracal_api.errors import BadGateway, BadRequest, NotFound

INVALID_CONNECTION = "invalid_provider_connection"
INVALID_AUTHORIZE = "invalid_provider_oauth_authorize"
INVALID_REVOKE = "invalid_provider_connection_revoke"


class ProviderConnectionNotFound(NotFound):
    code = "provider_connection_not_found"
    description = "No active provider connection exists for this subject and provider."


class ProviderConnectionUnsupported(BadRequest):
    code = "provider_connection_unsupported"
    description = "Connections exist only for oauth2_authorization_code providers."


class ProviderAuthorizationEndpointInvalid(BadRequest):
    code = "provider_authorization_endpoint_invalid"
    description = (
        "The provider's authorization_endpoint must be an https URL without user information."
    )


class InvalidOAuthCallback(BadRequest):
    code = "invalid_oauth_callback"
    description = "The OAuth callback query is invalid."


class OAuthStateExpired(BadRequest):
    code = "oauth_state_expired"
    description = (
        "The OAuth state is unknown, already used or expired; start the authorization again."
    )


class OAuthStateInvalid(BadRequest):
    code = "oauth_state_invalid"
    description = "The stored OAuth state is incomplete."


class OAuthStateMismatch(BadRequest):
    code = "oauth_state_mismatch"
    description = "The OAuth state belongs to another zone."


class ProviderOAuthDenied(BadRequest):
    code = "provider_oauth_denied"
    description = "The provider denied the authorization."


class AuthorizationCodeRequired(BadRequest):
    code = "authorization_code_required"
    description = "The callback carries no authorization code."


class ProviderTokenEndpointNotAllowed(BadRequest):
    code = "provider_token_endpoint_not_allowed"
    description = "The token endpoint must be https and listed in allowed_token_hosts."


class ProviderTokenExchangeFailed(BadGateway):
    code = "provider_token_exchange_failed"
    description = "The provider's token endpoint did not complete the code exchange."


class ProviderTokenResponseInvalid(BadGateway):
    code = "provider_token_response_invalid"
    description = "The provider's token response holds no usable access token."


class ProviderTokenTypeUnsupported(BadGateway):
    code = "provider_token_type_unsupported"
    description = (
        "The provider issued a token type other than bearer and no auth_scheme is configured."
    )
