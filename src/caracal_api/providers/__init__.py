"""Providers: upstream credential configuration, connectivity checks and OIDC discovery."""
