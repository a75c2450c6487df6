"""Alembic migrations, shipped inside the distribution so installed servers can migrate."""
