"""Fixtures of the gate tests that go through the API."""

from tests.support.flows import team

__all__ = ["team"]
