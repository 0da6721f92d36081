"""Step-up challenges: list, count, read and operator decisions (events.md §8)."""
