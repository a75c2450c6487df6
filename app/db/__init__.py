"""Persistence plumbing: declarative base, engine and session factory, migrations."""
