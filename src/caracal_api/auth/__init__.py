"""Admin-token authentication, authorization gates and rate limits (foundation §6–§8)."""
