"""Data contracts: a dataset checked against a version's signature and reference profile."""
