"""Delegated grants: which subject may use which resource scopes through which application."""
