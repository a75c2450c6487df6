"""Fixtures of the promotion tests."""

from tests.support.flows import team

__all__ = ["team"]
