"""Prometheus metrics: request latency, domain counters counted after commit, drift scores."""
