"""Modelgate: a model registry with promotion gates, approvals, rollback and an audit log."""

__version__ = "0.1.0"
