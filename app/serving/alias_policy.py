"""An alias's policy: the gates a version must pass before a protected alias moves to it.

The policy document's ``aliases`` entries name protected aliases, each with rules (run
against production, as production's are), ``approvals_required`` and ``auto_promote``.
An alias with no entry is moved by any submitter.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal, Role, role_allows
from app.errors import AliasGatesFailed, AliasNeedsApproval, Forbidden
from app.promotion.evaluation import evaluate, production_version
from app.promotion.transitions import Loaded
from app.registry.models import Stage
from app.storage.base import ArtifactStore


def check(
    session: Session,
    *,
    actor: Principal,
    loaded: Loaded,
    alias: str,
    store: ArtifactStore | None,
) -> None:
    """Nothing for an unprotected alias; for a protected one, its gates must pass now
    (422 alias-gates-failed with the report otherwise), and one that asks for approvals
    or has auto-promote off is refused (409 alias-needs-approval)."""
    assert loaded.policy is not None
    stage = loaded.policy.document.aliases.get(alias)
    if stage is None:
        return
    if stage.approvals_required > 0 or not stage.auto_promote:
        raise AliasNeedsApproval(
            f"alias {alias!r} of model {loaded.model.name!r} is protected by its policy with "
            f"{stage.approvals_required} approval(s) and auto_promote "
            f"{'on' if stage.auto_promote else 'off'}; moving it through a reviewed promotion "
            "request is not available yet: set approvals_required 0 and auto_promote true "
            "to move it when its gates pass",
            alias=alias,
        )
    assert store is not None, "a protected alias's gates need the artifact store"
    production = production_version(session, loaded.model.id)
    result = evaluate(
        session, store=store, model=loaded.model, version=loaded.version,
        target=Stage.PRODUCTION, policy=loaded.policy, production=production, stage=stage,
    )  # fmt: skip
    audit.record(
        session, actor=actor, action=AuditAction.GATES_EVALUATED, model=loaded.model.name,
        version=loaded.version.version,
        details={"alias": alias, "report_digest": result.report.digest,
                 "passed": result.passed, "failed": result.report.failed,
                 "policy_revision": loaded.policy.revision},
    )  # fmt: skip
    if not result.passed:
        raise AliasGatesFailed(
            f"version {loaded.version.version} fails the gates of alias {alias!r}: "
            + ", ".join(result.report.failed),
            alias=alias,
            report=result.document,
        )


def check_removal(*, actor: Principal, loaded: Loaded, alias: str) -> None:
    """A protected alias is removed only by an admin (who may change the policy too)."""
    assert loaded.policy is not None
    if alias in loaded.policy.document.aliases and not role_allows(actor.role, Role.ADMIN):
        raise Forbidden(f"alias {alias!r} is protected by the model's policy; an admin removes it")
