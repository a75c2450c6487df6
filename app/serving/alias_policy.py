"""An alias's policy: the gates a version must pass before a protected alias moves to it,
and the reviewers who must approve when the policy asks for them.

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
from app.promotion import requests
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
    reason: str | None = None,
) -> None:
    """Nothing for an unprotected alias. For a protected one its gates must pass now
    (422 alias-gates-failed with the report otherwise). When the policy also asks for
    approvals (or has auto-promote off), a pending promotion request targeting the alias
    is recorded (or the version's existing one found) and the move is refused with
    409 alias-needs-approval naming it (``promotion_id`` in the problem); its
    ``keep_changes`` tells the caller to commit the new request before answering."""
    assert loaded.policy is not None
    stage = loaded.policy.document.aliases.get(alias)
    if stage is None:
        return
    needs_approval = stage.approvals_required > 0 or not stage.auto_promote
    if needs_approval:
        pending = requests.pending_alias_request(session, version=loaded.version, alias=alias)
        if pending is not None:
            raise _needs_approval(loaded, alias, pending.id, stage.approvals_required, new=False)
    assert store is not None, "a protected alias's gates need the artifact store"
    production = production_version(session, loaded.model.id)
    if production is not None and production.id == loaded.version.id:
        production = None
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
    if needs_approval:
        request = requests.request_alias_move(
            session, actor=actor, loaded=loaded, alias=alias, result=result, comment=reason
        )
        raise _needs_approval(loaded, alias, request.id, stage.approvals_required, new=True)


def _needs_approval(
    loaded: Loaded, alias: str, promotion_id: int, approvals: int, *, new: bool
) -> AliasNeedsApproval:
    said = "is recorded" if new else "was already pending"
    error = AliasNeedsApproval(
        f"alias {alias!r} of model {loaded.model.name!r} is protected by its policy "
        f"({approvals} approval(s)); its gates passed and promotion request {promotion_id} "
        f"to move it to version {loaded.version.version} {said}: the alias moves when "
        f"reviewers approve it (`modelgate promotions approve {promotion_id}`, or "
        f"POST /api/v1/promotions/{promotion_id}/approve)",
        alias=alias,
        promotion_id=promotion_id,
    )
    error.keep_changes = new
    return error


def check_removal(*, actor: Principal, loaded: Loaded, alias: str) -> None:
    """A protected alias is removed only by an admin (who may change the policy too)."""
    assert loaded.policy is not None
    if alias in loaded.policy.document.aliases and not role_allows(actor.role, Role.ADMIN):
        raise Forbidden(f"alias {alias!r} is protected by the model's policy; an admin removes it")
