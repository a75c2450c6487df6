"""The console's pages and forms under /ui/.

Pages read through the same services as the API, and every action goes through the
same service call as its API route, acting as the signed-in token's principal, so the
audit log cannot tell a click from a curl. Forms are plain POSTs carrying a CSRF token;
a POST without a valid token, or from a role that may not act, is a 403 and changes
nothing.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.audit import service as audit_service
from app.auth.roles import Principal, Role, role_allows
from app.console import sessions, views
from app.errors import (
    AppError,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    RolloutNotFound,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.promotion import operations
from app.promotion import policy as policy_service
from app.promotion import requests as promotion_service
from app.promotion.models import PromotionStatus
from app.promotion.schemas import GateReportRead, PromotionRead
from app.registry import service as registry_service
from app.registry.models import Stage
from app.registry.schemas import ModelRead, VersionRead
from app.rollouts import service as rollout_service
from app.rollouts.schemas import RolloutRead
from app.serving import aliases as serving_aliases
from app.settings import Settings
from app.storage.base import ArtifactStore

HERE = Path(__file__).resolve().parent
COOKIE = "modelgate_console"
SIGNIN_COOKIE = "modelgate_console_signin"
PREFIX = "/ui"

# Nothing from another host, no inline script or style, no framing, forms only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
    )
)
templates.env.filters["num"] = views.fmt_number
templates.env.filters["signed"] = views.fmt_signed
templates.env.globals["PromotionStatus"] = PromotionStatus

router = APIRouter(prefix=PREFIX, include_in_schema=False)


class SignInNeeded(Exception):
    """A page asked for by a browser without a live session."""


class ConsoleSecurityHeaders:
    """Strict headers on everything under /ui/ (pages, redirects, static files). Plain
    ASGI: it only adds headers to the response start and leaves bodies alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        static = path.startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Dependencies ------------------------------------------------------------------------------


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent."""
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


Db = Annotated[Session, Depends(get_db, scope="function")]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


def current(request: Request, db: Db) -> sessions.SignedIn:
    """The signed-in principal. A page without one goes to sign-in; a POST is refused."""
    session_id = request.cookies.get(COOKIE)
    signed_in = None
    if session_id:
        signed_in = sessions.resolve(
            db, session_id=session_id, idle_seconds=_settings(request).console_idle_seconds
        )
    if signed_in is None:
        if request.method != "GET":
            raise Forbidden("sign in first")
        raise SignInNeeded
    request.state.console_session_id = session_id
    return signed_in


Viewer = Annotated[sessions.SignedIn, Depends(current)]

MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the only kind the console's pages send)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("the console accepts application/x-www-form-urlencoded forms")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"a console form holds at most {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the form is not valid URL-encoded UTF-8") from exc
    return dict(pairs)


FormData = Annotated[dict[str, str], Depends(read_form)]


def field(form: dict[str, str], name: str, *, max_length: int = 4000) -> str:
    value = form.get(name, "").strip()
    if len(value) > max_length or "\x00" in value:
        raise ValidationFailed(
            f"{name} must be at most {max_length} characters, without NUL characters",
            errors=[{"loc": ["form", name], "msg": "too long or holds NUL"}],
        )
    return value


def _check_csrf(request: Request, form: dict[str, str]) -> None:
    session_id: str = request.state.console_session_id
    if not sessions.csrf_matches(session_id, form.get("csrf_token")):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and retry")


def _need(principal: Principal, role: Role, model: str | None = None) -> None:
    if not role_allows(principal.role, role):
        raise Forbidden(
            f"this needs the {role.value} role; you are signed in as {principal.role.value}"
        )
    if model is not None and not principal.may_touch_model(model):
        raise Forbidden(f"your token is limited to model {principal.model_scope!r}")


def _reason(form: dict[str, str], what: str) -> str:
    reason = field(form, "reason")
    if not reason:
        raise ValidationFailed(
            f"{what} needs a reason", errors=[{"loc": ["form", "reason"], "msg": "required"}]
        )
    return reason


def _operator_form(
    request: Request, form: dict[str, str], principal: Principal, model: str, what: str
) -> str:
    """An operator's form action on ``model``: the CSRF token, the role and the model scope
    checked; returns the reason the audit log keeps (``what`` names the action if missing)."""
    _check_csrf(request, form)
    _need(principal, Role.OPERATOR, model)
    return _reason(form, what)


def _reviewer_form(
    request: Request, form: dict[str, str], db: Session, principal: Principal, promotion_id: int
) -> None:
    """A reviewer's form action on a promotion request: the CSRF token and the role checked
    before the request is read, the token's model scope against the request's model."""
    _check_csrf(request, form)
    _need(principal, Role.REVIEWER)
    p = promotion_service.get(db, actor=principal, request_id=promotion_id)
    _need(principal, Role.REVIEWER, p.model)


def _may(principal: Principal, role: Role, model: str | None = None) -> bool:
    return role_allows(principal.role, role) and (model is None or principal.may_touch_model(model))


# Rendering ----------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    viewer: sessions.SignedIn | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    context.update(
        viewer=viewer.principal if viewer else None,
        csrf_token=viewer.csrf_token if viewer else None,
        nav=context.get("nav"),
    )
    response: HTMLResponse = templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


def _problem_page(request: Request, viewer: sessions.SignedIn | None, exc: AppError) -> Response:
    return render(
        request,
        "error.html",
        viewer,
        status_code=exc.status,
        title=exc.title,
        detail=exc.detail,
        back=request.headers.get("referer") if _same_origin(request) else None,
    )


def _same_origin(request: Request) -> bool:
    referer = request.headers.get("referer") or ""
    return referer.startswith(str(request.base_url))


def _after_action(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': message})}", status_code=303)


# Sign-in -------------------------------------------------------------------------------------


def _set_cookie(request: Request, response: Response, name: str, value: str, **extra: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=PREFIX,
        **extra,
    )


def _safe_next(target: str | None) -> str:
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX + "/promotions"


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    # Login CSRF: the form carries a random value that must match a cookie only this
    # origin could set (a cross-site POST does not carry Lax cookies either).
    nonce = sessions.new_nonce()
    response = render(
        request, "sign_in.html", None, title="Sign in", next=_safe_next(next), nonce=nonce
    )
    _set_cookie(request, response, SIGNIN_COOKIE, nonce, max_age=3600)
    return response


@router.post("/sign-in")
def sign_in(
    request: Request,
    db: Db,
    form: FormData,
) -> Response:
    token = field(form, "token", max_length=512)
    nonce = field(form, "nonce", max_length=128)
    next = field(form, "next", max_length=2048)
    expected = request.cookies.get(SIGNIN_COOKIE)
    if not expected or not sessions.same(expected, nonce):
        raise Forbidden("the sign-in form expired: reload the page and retry")
    try:
        session_id, _ = sessions.sign_in(
            db, secret=token, lifetime_seconds=_settings(request).console_session_seconds
        )
    except Unauthenticated:
        fresh = sessions.new_nonce()
        response = render(
            request,
            "sign_in.html",
            None,
            status_code=401,
            title="Sign in",
            next=_safe_next(next),
            nonce=fresh,
            error="That token is not valid (unknown, revoked or expired).",
        )
        _set_cookie(request, response, SIGNIN_COOKIE, fresh, max_age=3600)
        return response
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(
        request,
        redirect,
        COOKIE,
        session_id,
        max_age=_settings(request).console_session_seconds,
    )
    redirect.delete_cookie(SIGNIN_COOKIE, path=PREFIX)
    return redirect


@router.post("/sign-out")
def sign_out(request: Request, db: Db, viewer: Viewer, form: FormData) -> Response:
    _check_csrf(request, form)
    sessions.sign_out(db, session_id=request.state.console_session_id)
    response = RedirectResponse(PREFIX + "/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# Models --------------------------------------------------------------------------------------


def _all_models(db: Session) -> list[ModelRead]:
    models: list[ModelRead] = []
    cursor: str | None = None
    while True:
        page = registry_service.list_models(db, cursor=cursor, limit=200)
        models.extend(page.items)
        cursor = page.next_cursor
        if cursor is None or len(models) >= 5000:
            return models


def _pending(db: Session, principal: Principal, model: str | None = None) -> list[PromotionRead]:
    found: list[PromotionRead] = []
    cursor: str | None = None
    while True:
        page = promotion_service.list_requests(
            db,
            actor=principal,
            status=PromotionStatus.PENDING_APPROVAL.value,
            model_name=model,
            cursor=cursor,
            limit=200,
        )
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None or len(found) >= 2000:
            return found


@router.get("/")
def home() -> Response:
    return RedirectResponse(PREFIX + "/models", status_code=303)


@router.get("/models")
def models_page(
    request: Request,
    db: Db,
    viewer: Viewer,
    q: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    principal = viewer.principal
    models = [
        m
        for m in _all_models(db)
        if principal.may_touch_model(m.name) and q.strip().lower() in m.name.lower()
    ]
    pending = collections.Counter(p.model for p in _pending(db, principal))
    rows = []
    for m in models:
        history = operations.history(db, model_name=m.name, cursor=None, limit=1).items
        last = max([m.updated_at, *(h.started_at for h in history)])
        rows.append({"model": m, "pending": pending.get(m.name, 0), "last_change": last})
    return render(request, "models.html", viewer, title="Models", nav="models", rows=rows, q=q)


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    serving: int
    target: int | None
    choices: list[int]


def _versions(db: Session, model: str) -> list[VersionRead]:
    found: list[VersionRead] = []
    cursor: str | None = None
    while True:
        page = registry_service.list_versions(
            db, model_name=model, stage=None, order_by="-version", dataset=None,
            cursor=cursor, limit=200,
        )  # fmt: skip
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None or len(found) >= 2000:
            return found


def _rollback_plan(
    db: Session, model: ModelRead, versions: list[VersionRead]
) -> RollbackPlan | None:
    """What a rollback would do: the version serving now, and the previous stable one
    (the latest version that served before, is archived and was not rolled back)."""
    if model.production_version is None:
        return None
    by_number = {v.version: v for v in versions}
    history = operations.history(db, model_name=model.name, cursor=None, limit=200).items
    choices: list[int] = []
    for entry in history:
        v = by_number.get(entry.version)
        if (
            v is not None
            and entry.version != model.production_version
            and v.stage is Stage.ARCHIVED
            and entry.version not in choices
        ):
            choices.append(entry.version)
    target = next((n for n in choices if not by_number[n].rolled_back), None)
    return RollbackPlan(serving=model.production_version, target=target, choices=choices)


@router.get("/models/{model}")
def model_page(request: Request, model: str, db: Db, viewer: Viewer) -> Response:
    principal = viewer.principal
    if not principal.may_touch_model(model):
        raise Forbidden(f"your token is limited to model {principal.model_scope!r}")
    m = registry_service.read_model(db, model)
    m.aliases = serving_aliases.of_models(db, [m.name]).get(m.name, {})
    versions = _versions(db, model)
    by_stage: dict[str, list[VersionRead]] = {s.value: [] for s in Stage}
    named = serving_aliases.names_by_version(db, m.name)
    for v in versions:
        v.aliases = named.get(v.version, [])
        by_stage[v.stage.value].append(v)
    history = operations.history(db, model_name=model, cursor=None, limit=50).items
    freeze = operations.freeze_state(registry_service.get_model(db, model))
    drift = _drift(db, model)
    rollouts = rollout_service.list_rollouts(
        db, model_name=model, state=None, cursor=None, limit=1
    ).items
    active = rollouts[0] if rollouts and rollouts[0].state in ("running", "paused") else None
    return render(
        request,
        "model.html",
        viewer,
        title=model,
        nav="models",
        m=m,
        by_stage=by_stage,
        history=history,
        freeze=freeze,
        drift=drift,
        pending=_pending(db, principal, model),
        plan=_rollback_plan(db, m, versions),
        may_operate=_may(principal, Role.OPERATOR, model),
        done=request.query_params.get("done"),
        rollout=active,
        rollout_view=views.rollout_view(active) if active else None,
        hold=rollout_service.hold_progress(db, settings=_settings(request), rollout_id=active.id)
        if active else None,
    )  # fmt: skip


def _drift(db: Session, model: str) -> Any:
    from app.drift import service as drift_service

    reports = drift_service.list_drift_reports(
        db, model_name=model, drifted=None, cursor=None, limit=1
    ).items
    return reports[0] if reports else None


def _confirm(
    request: Request, model: str, action: str, db: Session, viewer: sessions.SignedIn
) -> Response:
    _need(viewer.principal, Role.OPERATOR, model)
    m = registry_service.read_model(db, model)
    plan = _rollback_plan(db, m, _versions(db, model)) if action == "rollback" else None
    return render(
        request, "confirm.html", viewer, title=f"{action.title()} {model}", nav="models",
        m=m, action=action, plan=plan,
    )  # fmt: skip


@router.get("/models/{model}/rollback")
def confirm_rollback(request: Request, model: str, db: Db, viewer: Viewer) -> Response:
    """Say what a rollback will do and ask why, before it acts."""
    return _confirm(request, model, "rollback", db, viewer)


@router.get("/models/{model}/freeze")
def confirm_freeze(request: Request, model: str, db: Db, viewer: Viewer) -> Response:
    return _confirm(request, model, "freeze", db, viewer)


@router.get("/models/{model}/unfreeze")
def confirm_unfreeze(request: Request, model: str, db: Db, viewer: Viewer) -> Response:
    return _confirm(request, model, "unfreeze", db, viewer)


@router.post("/models/{model}/rollback")
def rollback(
    request: Request,
    model: str,
    db: Db,
    viewer: Viewer,
    form: FormData,
) -> Response:
    reason = _operator_form(request, form, viewer.principal, model, "a rollback")
    to_version = field(form, "to_version", max_length=12)
    target = int(to_version) if to_version.isdigit() else None
    result = operations.rollback(
        db, actor=viewer.principal, store=_store(request), model_name=model,
        to_version=target, reason=reason,
    )  # fmt: skip
    return _after_action(
        f"{PREFIX}/models/{quote(model)}",
        f"Rolled back: v{result.serving_version} serves now (was v{result.replaced_version}).",
    )


@router.post("/models/{model}/freeze")
def freeze(
    request: Request,
    model: str,
    db: Db,
    viewer: Viewer,
    form: FormData,
) -> Response:
    reason = _operator_form(request, form, viewer.principal, model, "freezing")
    operations.freeze(db, actor=viewer.principal, model_name=model, reason=reason)
    return _after_action(
        f"{PREFIX}/models/{quote(model)}", "Frozen: promotions to production are refused."
    )


@router.post("/models/{model}/unfreeze")
def unfreeze(
    request: Request,
    model: str,
    db: Db,
    viewer: Viewer,
    form: FormData,
) -> Response:
    reason = _operator_form(request, form, viewer.principal, model, "unfreezing")
    operations.unfreeze(db, actor=viewer.principal, model_name=model, reason=reason)
    return _after_action(
        f"{PREFIX}/models/{quote(model)}", "Unfrozen: promotions to production are allowed again."
    )


# Rollouts ------------------------------------------------------------------------------------


def _rollout(db: Session, principal: Principal, model: str, rollout_id: int) -> RolloutRead:
    """The rollout, if it is one of ``model``'s (else 404, as the API answers)."""
    _need(principal, Role.READER, model)
    r = rollout_service.get(db, actor=principal, rollout_id=rollout_id)
    if r.model != registry_service.get_model(db, model).name:
        raise RolloutNotFound(f"no rollout {rollout_id} of model {model!r}")
    return r


def _may_approve_rollout(principal: Principal, r: RolloutRead) -> bool:
    step = r.steps[r.step]
    return (
        r.state in ("running", "paused")
        and bool(step.hold.get("approval"))
        and step.approved_by is None
        and _may(principal, Role.REVIEWER, r.model)
        and principal.name != r.created_by
    )


@router.get("/models/{model}/rollouts")
def rollouts_page(request: Request, model: str, db: Db, viewer: Viewer) -> Response:
    _need(viewer.principal, Role.READER, model)
    m = registry_service.read_model(db, model)
    found: list[RolloutRead] = []
    cursor: str | None = None
    while len(found) < 500:
        page = rollout_service.list_rollouts(
            db, model_name=model, state=None, cursor=cursor, limit=100
        )
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return render(
        request, "rollouts.html", viewer, title=f"Rollouts of {model}", nav="models",
        m=m, rollouts=[(r, views.rollout_view(r)) for r in found],
    )  # fmt: skip


@router.get("/models/{model}/rollouts/{rollout_id}")
def rollout_page(request: Request, model: str, rollout_id: int, db: Db, viewer: Viewer) -> Response:
    principal = viewer.principal
    r = _rollout(db, principal, model, rollout_id)
    active = r.state in ("running", "paused")
    may_operate = active and _may(principal, Role.OPERATOR, model)
    may_approve = _may_approve_rollout(principal, r)
    why_not = None
    step = r.steps[r.step]
    if active and step.hold.get("approval") and step.approved_by is None and not may_approve:
        why_not = (
            "You started this rollout, so another reviewer must approve the step."
            if principal.name == r.created_by
            else f"Approving needs the reviewer role; you are {principal.role.value}."
        )
    return render(
        request, "rollout.html", viewer, title=f"Rollout #{r.id} of {model}", nav="models",
        m=registry_service.read_model(db, model), r=r, view=views.rollout_view(r),
        looks=views.look_rows(r), decisions=list(reversed(r.decisions)),
        hold=rollout_service.hold_progress(db, settings=_settings(request), rollout_id=r.id)
        if active else None,
        may_operate=may_operate, may_approve=may_approve, why_not=why_not,
        done=request.query_params.get("done"),
    )  # fmt: skip


ROLLOUT_ACTIONS = ("advance", "pause", "resume", "abort", "approve")


@router.post("/models/{model}/rollouts/{rollout_id}/{action}")
def rollout_action(
    request: Request,
    model: str,
    rollout_id: int,
    action: str,
    db: Db,
    viewer: Viewer,
    form: FormData,
) -> Response:
    """The operators' (and, for an approval hold, reviewers') buttons: the same service
    calls as POST /api/v1/rollouts/{id}/{action}."""
    _check_csrf(request, form)
    principal = viewer.principal
    if action not in ROLLOUT_ACTIONS:
        raise RolloutNotFound(f"no rollout action {action!r}")
    _need(principal, Role.REVIEWER if action == "approve" else Role.OPERATOR, model)
    _rollout(db, principal, model, rollout_id)
    reason = field(form, "reason", max_length=2000) or None
    if action == "abort":
        r = rollout_service.abort(
            db, actor=principal, rollout_id=rollout_id, reason=_reason(form, "an abort")
        )
        message = f"Aborted: v{r.incumbent_version} takes all traffic again."
    elif action == "advance":
        step = field(form, "step", max_length=6)
        r = rollout_service.advance(
            db, actor=principal, settings=_settings(request), rollout_id=rollout_id,
            reason=reason, from_step=int(step) if step.isdigit() else None,
        )  # fmt: skip
        message = "Completed." if r.state == "completed" else f"Advanced to step {r.step + 1}."
    elif action == "pause":
        rollout_service.pause(db, actor=principal, rollout_id=rollout_id, reason=reason)
        message = "Paused: no looks and no steps; the weights stay."
    elif action == "resume":
        rollout_service.resume(db, actor=principal, rollout_id=rollout_id, reason=reason)
        message = "Resumed."
    else:
        rollout_service.approve(
            db, actor=principal, rollout_id=rollout_id,
            comment=field(form, "comment", max_length=2000) or None,
        )  # fmt: skip
        message = "Approved: the step may advance when its other holds are over."
    return _after_action(f"{PREFIX}/models/{quote(model)}/rollouts/{rollout_id}", message)


# Versions ------------------------------------------------------------------------------------


def _version(db: Session, model: str, number: int) -> VersionRead:
    m, v = registry_service.get_version(db, model, number)
    return registry_service.to_version_read(m.name, v)


def _directions(db: Session, model: str) -> dict[str, Any]:
    document = policy_service.in_force(db, registry_service.get_model(db, model)).document
    return dict(document.metric_directions)


@router.get("/models/{model}/versions/{number}")
def version_page(request: Request, model: str, number: int, db: Db, viewer: Viewer) -> Response:
    principal = viewer.principal
    _need(principal, Role.READER, model)
    v = _version(db, model, number)
    m = registry_service.read_model(db, model)
    production = (
        _version(db, model, m.production_version)
        if m.production_version is not None and m.production_version != number
        else None
    )
    dry_runs: list[tuple[str, GateReportRead | None, list[views.RuleRow] | str]] = []
    for target in (Stage.STAGING, Stage.PRODUCTION):
        try:
            report = promotion_service.dry_run(
                db, actor=principal, store=_store(request), model_name=model, number=number,
                target=target,
            )  # fmt: skip
            dry_runs.append((target.value, report, views.rule_rows(report.rules)))
        except AppError as exc:
            dry_runs.append((target.value, None, exc.detail))
    return render(
        request, "version.html", viewer, title=f"{model} v{number}", nav="models",
        m=m, v=v, production=production,
        groups=views.compare_metrics(
            v.metrics, production.metrics if production else None, _directions(db, model)
        ),
        dry_runs=dry_runs,
        versions=[x.version for x in _versions(db, model)],
    )  # fmt: skip


@router.get("/models/{model}/compare")
def compare_page(
    request: Request,
    model: str,
    db: Db,
    viewer: Viewer,
    a: Annotated[int | None, Query(ge=1, le=2_000_000_000)] = None,
    b: Annotated[int | None, Query(ge=1, le=2_000_000_000)] = None,
) -> Response:
    _need(viewer.principal, Role.READER, model)
    numbers = [x.version for x in _versions(db, model)]
    m = registry_service.read_model(db, model)
    if a is None:
        a = m.production_version or (numbers[1] if len(numbers) > 1 else None)
    if b is None:
        b = numbers[0] if numbers else None
    left = _version(db, model, a) if a else None
    right = _version(db, model, b) if b else None
    return render(
        request, "compare.html", viewer, title=f"Compare {model}", nav="models",
        m=m, numbers=numbers, left=left, right=right,
        groups=views.compare_metrics(
            right.metrics, left.metrics, _directions(db, model)
        ) if left and right else [],
        lineage=views.lineage_changes(right.lineage, left.lineage) if left and right else [],
        signature=views.signature_changes(right.signature, left.signature)
        if left and right else [],
    )  # fmt: skip


# Promotions ----------------------------------------------------------------------------------


def _age(since: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - since).total_seconds()))
    if seconds < 3600:
        return f"{max(1, seconds // 60)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


templates.env.filters["age"] = _age


@router.get("/promotions")
def queue_page(request: Request, db: Db, viewer: Viewer) -> Response:
    pending = sorted(_pending(db, viewer.principal), key=lambda p: p.requested_at)
    return render(
        request, "queue.html", viewer, title="Review queue", nav="queue", pending=pending,
        done=request.query_params.get("done"),
    )  # fmt: skip


def _may_decide(principal: Principal, p: PromotionRead) -> bool:
    return (
        p.status is PromotionStatus.PENDING_APPROVAL
        and _may(principal, Role.REVIEWER, p.model)
        and principal.name != p.requested_by
        and all(a.reviewer != principal.name for a in p.approvals)
    )


@router.get("/promotions/{promotion_id}")
def promotion_page(request: Request, promotion_id: int, db: Db, viewer: Viewer) -> Response:
    principal = viewer.principal
    p = promotion_service.get(db, actor=principal, request_id=promotion_id)
    candidate = _version(db, p.model, p.version)
    against = p.report.evaluated_against
    production = _version(db, p.model, against) if against is not None else None
    m = registry_service.read_model(db, p.model)
    if (
        production is None
        and m.production_version is not None
        and m.production_version != p.version
    ):
        production = _version(db, p.model, m.production_version)
    rules = views.rule_rows(p.report.rules)
    groups = views.compare_metrics(
        candidate.metrics, production.metrics if production else None, _directions(db, p.model)
    )
    why_not = None
    if p.status is PromotionStatus.PENDING_APPROVAL and not _may_decide(principal, p):
        if principal.name == p.requested_by:
            why_not = "You requested this promotion, so another reviewer must decide it."
        elif any(a.reviewer == principal.name for a in p.approvals):
            why_not = "You have approved this request; it waits for more approvals."
        else:
            why_not = f"Deciding needs the reviewer role; you are {principal.role.value}."
    return render(
        request, "promotion.html", viewer, title=f"Promotion #{p.id}", nav="queue",
        p=p, m=m, candidate=candidate, production=production, rules=rules,
        failed=[r for r in rules if not r.passed], groups=groups,
        worse=sum(1 for g in groups for r in g.rows if r.verdict == "worse"),
        better=sum(1 for g in groups for r in g.rows if r.verdict == "better"),
        lineage=views.lineage_changes(candidate.lineage, production.lineage if production else {}),
        signature=views.signature_changes(
            candidate.signature, production.signature if production else None
        ),
        may_decide=_may_decide(principal, p), why_not=why_not,
        done=request.query_params.get("done"),
    )  # fmt: skip


@router.post("/promotions/{promotion_id}/approve")
def approve(
    request: Request,
    promotion_id: int,
    db: Db,
    viewer: Viewer,
    form: FormData,
) -> Response:
    principal = viewer.principal
    _reviewer_form(request, form, db, principal, promotion_id)
    result = promotion_service.approve(
        db, actor=principal, store=_store(request), request_id=promotion_id,
        comment=field(form, "comment") or None,
    )  # fmt: skip
    message = (
        f"Approved: {result.model} v{result.version} is now in {result.target.value}."
        if result.status is PromotionStatus.APPLIED
        else f"Approved; the request is {result.status.value.replace('_', ' ')}."
    )
    return _after_action(f"{PREFIX}/promotions/{promotion_id}", message)


@router.post("/promotions/{promotion_id}/reject")
def reject(
    request: Request,
    promotion_id: int,
    db: Db,
    viewer: Viewer,
    form: FormData,
) -> Response:
    principal = viewer.principal
    _reviewer_form(request, form, db, principal, promotion_id)
    comment = field(form, "comment")
    if not comment:
        return _problem_page(
            request, viewer, _CommentNeeded("Say why in Comment before rejecting.")
        )
    promotion_service.reject(db, actor=principal, request_id=promotion_id, comment=comment)
    return _after_action(f"{PREFIX}/promotions/{promotion_id}", "Rejected.")


class _CommentNeeded(AppError):
    status = 422
    code = "comment-needed"
    title = "A comment is needed"


# Audit ---------------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/audit")
def audit_page(
    request: Request,
    db: Db,
    viewer: Viewer,
    model: Annotated[str, Query(max_length=128)] = "",
    actor: Annotated[str, Query(max_length=256)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    _need(viewer.principal, Role.AUDITOR)
    since_at = _parse_time(since)
    if since_at is None and not since:
        since_at = datetime.now(UTC) - timedelta(days=30)
    # The audit query reads oldest first; keep the newest 200 of the window.
    recent: collections.deque[Any] = collections.deque(maxlen=200)
    after_id: int | None = None
    for _ in range(100):
        batch = audit_service.query(
            db, model=model or None, actor=actor or None, action=action or None,
            since=since_at, until=_parse_time(until), after_id=after_id, limit=1000,
        )  # fmt: skip
        recent.extend(batch)
        if len(batch) < 1000:
            break
        after_id = batch[-1].id
    verification = audit_service.verify(db)
    return render(
        request, "audit.html", viewer, title="Audit", nav="audit",
        events=list(reversed(recent)), verification=verification,
        filters={"model": model, "actor": actor, "action": action, "since": since,
                 "until": until},
    )  # fmt: skip


# Installation --------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Serve the console under /ui/ and send / there."""

    async def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    async def bare() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.add_api_route("/", root, include_in_schema=False)
    app.add_api_route(PREFIX, bare, include_in_schema=False)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.add_middleware(ConsoleSecurityHeaders)

    previous = app.exception_handlers.get(AppError)

    async def on_app_error(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX + "/") or not isinstance(exc, AppError):
            assert previous is not None
            answer = previous(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        return _problem_page(request, None, exc)

    async def on_sign_in_needed(request: Request, exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(
            f"{PREFIX}/sign-in?{urlencode({'next': target})}", status_code=303
        )
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(SignInNeeded, on_sign_in_needed)
