"""Gate policies: the documented default, validation on write, and revisions.

The default policy, used until a model gets one of its own:

- staging: the artifact is intact, and lineage is complete (code commit, data version,
  feature pipeline version, environment, hyperparameters, seed); applied at once when
  those pass (auto-promote).
- production: the same, plus no regression against production on the model's primary
  metric and dataset (delta 0; passes when there is no production version yet); the
  version must come from staging; one approval by a reviewer other than the submitter.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.hashing import canonical_json
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import InvalidPolicy
from app.gates import registry as gate_registry
from app.gates.catalogue import Direction, direction_of
from app.gates.rules.artifact_intact import ArtifactRule
from app.gates.rules.lineage_complete import LineageRule
from app.gates.rules.no_regression import NoRegressionRule
from app.promotion import repository
from app.promotion.models import GatePolicy
from app.promotion.schemas import GatePolicyDocument, ProductionPolicy, StagePolicy
from app.registry import service as registry
from app.registry.models import RegisteredModel


@dataclass(frozen=True)
class PolicyInForce:
    document: GatePolicyDocument
    revision: int
    digest: str
    created_by: str | None
    created_at: datetime | None

    @property
    def is_default(self) -> bool:
        return self.revision == 0


def default_policy() -> GatePolicyDocument:
    base: list[Any] = [ArtifactRule(kind="artifact_intact"), LineageRule(kind="lineage_complete")]
    return GatePolicyDocument(
        staging=StagePolicy(rules=list(base), approvals_required=0, auto_promote=True),
        production=ProductionPolicy(
            rules=[*base, NoRegressionRule(kind="no_regression")],
            approvals_required=1,
            auto_promote=False,
            require_staging=True,
        ),
    )


def digest_of(document: GatePolicyDocument) -> str:
    return hashlib.sha256(canonical_json(document.model_dump(mode="json")).encode()).hexdigest()


# Validated documents by digest. A stored revision never changes, and its digest is the
# sha256 of the canonical JSON stored with it, so the digest identifies the document: each
# process validates a revision once instead of on every request. Nothing mutates a
# document in force (they are read, reported and serialised).
_PARSED_MAX = 512
_parsed: dict[str, GatePolicyDocument] = {}
_parsed_lock = threading.Lock()
_default: tuple[GatePolicyDocument, str] | None = None


def _validated(digest: str, stored: dict[str, Any]) -> GatePolicyDocument:
    document = _parsed.get(digest)
    if document is not None:
        return document
    document = GatePolicyDocument.model_validate(stored)
    with _parsed_lock:
        if len(_parsed) >= _PARSED_MAX:
            _parsed.pop(next(iter(_parsed)))  # the oldest entry
        _parsed[digest] = document
    return document


def _default_in_force() -> tuple[GatePolicyDocument, str]:
    global _default
    if _default is None:
        document = default_policy()
        _default = (document, digest_of(document))
    return _default


def in_force(session: Session, model: RegisteredModel) -> PolicyInForce:
    row = repository.latest_policy(session, model.id)
    if row is None:
        document, digest = _default_in_force()
        return PolicyInForce(document, 0, digest, None, None)
    return PolicyInForce(
        _validated(row.digest, row.document),
        row.revision,
        row.digest,
        row.created_by,
        row.created_at,
    )


def metric_direction(
    metric: str, rule_direction: Direction | None, document: GatePolicyDocument
) -> Direction | None:
    if rule_direction is not None:
        return rule_direction
    return direction_of(metric, document.metric_directions)


@dataclass(frozen=True)
class _PolicyFacts:
    """What a policy's rules are checked against when it is saved."""

    primary_metric: str | None
    primary_dataset: str | None
    document: GatePolicyDocument

    def direction(self, metric: str, override: Direction | None) -> Direction | None:
        return metric_direction(metric, override, self.document)


def validate(document: GatePolicyDocument, model: RegisteredModel) -> None:
    """Checks a schema cannot express (each rule kind says which: every metric a rule
    compares has a known direction, a no-regression rule without a metric has the model's
    primary metric to fall back on)."""
    facts = _PolicyFacts(model.primary_metric, model.primary_dataset, document)
    errors: list[dict[str, Any]] = []
    for stage in ("staging", "production"):
        policy: StagePolicy = getattr(document, stage)
        for index, rule in enumerate(policy.rules):
            loc: list[str | int] = ["body", stage, "rules", index]
            errors.extend(
                {"loc": [*loc, problem.field], "msg": problem.message}
                for problem in gate_registry.policy_problems(rule, facts)
            )
    if errors:
        raise InvalidPolicy(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors),
            errors=errors,
        )


def replace(
    session: Session, *, actor: Principal, model_name: str, document: GatePolicyDocument
) -> PolicyInForce:
    """Store a new revision of the model's policy (the old ones stay, for the record)."""
    model = registry.lock_model(session, model_name)
    validate(document, model)
    current = repository.latest_policy(session, model.id)
    digest = digest_of(document)
    if current is not None and current.digest == digest:
        # Re-sending the policy in force is a no-op, so that retries and config-as-code
        # runs do not mint revisions (which would make pending promotions re-evaluate).
        return in_force(session, model)
    revision = (current.revision if current else 0) + 1
    row = GatePolicy(
        model_id=model.id,
        revision=revision,
        document=document.model_dump(mode="json"),
        digest=digest,
        created_by=actor.name,
        created_at=utcnow(),
    )
    repository.add(session, row)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.POLICY_UPDATED,
        model=model.name,
        details={
            "revision": revision,
            "digest": digest,
            "previous_digest": current.digest if current else _default_in_force()[1],
            "policy": row.document,
        },
    )
    return PolicyInForce(document, revision, digest, actor.name, row.created_at)
