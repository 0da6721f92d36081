"""Provider connections: upstream OAuth token sets per (zone, subject, provider)."""
