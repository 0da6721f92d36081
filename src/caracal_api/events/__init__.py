"""Transactional outbox, dispatcher, stream signing, audit stream and audit ingest.

Producers call `outbox.record(...)` (or `record_many`) on the request's own transaction;
the dispatcher publishes committed rows to Redis streams (events.md §2–§4).
"""
