"""Applications: managed clients, DCR registrations, secret rotation and reveal."""
