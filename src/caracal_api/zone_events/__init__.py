"""Zone event reads: decision audit, admin audit, authority records, sessions (events.md §9)."""
