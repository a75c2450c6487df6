"""One module per rule kind: its policy configuration and its pure evaluation.

Each module holds a :class:`~app.gates.rules.base.RuleConfig` subclass (the JSON of
that kind in a gate policy, and how it reads the facts it needs) and a pure function
from plain values to a :class:`~app.gates.result.RuleResult`. The kinds are listed
in :mod:`app.gates.registry`.
"""
