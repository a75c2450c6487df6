"""Reproductions: re-runs of a version's training specification, submitted as evidence."""
