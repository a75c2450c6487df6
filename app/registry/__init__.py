"""Registered models, their versions, metrics, signatures, lineage and artifacts."""
