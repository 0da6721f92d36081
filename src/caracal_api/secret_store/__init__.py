"""The builtin secret store (objects.md §1.4): CSS1 envelopes in the `secret_store` table."""
