"""Idempotency keys: a retried create returns the first answer and creates nothing."""
