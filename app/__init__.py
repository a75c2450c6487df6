"""Modelgate: a model registry with promotion gates, approvals, rollback and a tamper-evident audit log."""

__version__ = "0.1.0"
