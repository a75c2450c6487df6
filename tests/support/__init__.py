"""Helpers shared by test packages: real services started for tests (moto's S3 server)."""
