"""Roles and what each may do.

``reader < submitter < reviewer < operator < admin``, each holding the rights of those
before it; ``auditor`` reads the audit log (and what a reader reads) and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    READER = "reader"
    SUBMITTER = "submitter"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    AUDITOR = "auditor"


_RANK = {Role.READER: 0, Role.SUBMITTER: 1, Role.REVIEWER: 2, Role.OPERATOR: 3, Role.ADMIN: 4}


def role_allows(held: Role, needed: Role) -> bool:
    """Whether a token with role ``held`` may call something that needs ``needed``."""
    if needed is Role.AUDITOR:
        return held in (Role.AUDITOR, Role.ADMIN)
    if held is Role.AUDITOR:
        return needed is Role.READER
    return _RANK[held] >= _RANK[needed]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, through which token.

    ``name`` is the principal's unique name (a person or a service account), never the
    token's label: it is the actor of audit events and the identity approvals compare,
    so one person with two tokens is one approver. ``role`` and ``model_scope`` are those
    of the token presented.
    """

    name: str
    role: Role
    token_id: str | None = None
    model_scope: str | None = None
    expires_at: datetime | None = None
    kind: str = "person"
    token_name: str | None = None

    def may_touch_model(self, model: str) -> bool:
        return self.model_scope is None or self.model_scope == model


SYSTEM = Principal(name="system", role=Role.ADMIN)
