"""Watching production after release against the previous version's baseline."""
