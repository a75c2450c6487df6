"""Fixtures of the operations tests."""

from tests.support.flows import team

__all__ = ["team"]
