"""Domain-free plumbing shared by every package."""
