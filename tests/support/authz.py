"""The authorization matrix: every route of the application x every kind of caller, and
the answer each one gets.

This one table is read three ways:

- ``tests/security/test_authz_matrix.py`` sends every cell's request to the live
  application and compares the answer, and fails when the application has a route the
  table does not list (or the table lists one the application no longer has);
- ``scripts/render-authz`` renders ``docs/authorization.md`` from it, and a test fails
  when the committed page drifts from the table.

A cell is one of:

- ``ok``: the authorization layer lets the call through. Any answer but 401 and 403
  counts (a 404, 409 or 422 is about the request, not about who sent it);
- ``401``: refused as unauthenticated (problem ``unauthenticated``);
- ``403``: refused by role or model scope (problem ``forbidden``);
- ``404``: the resource is hidden from this caller: answered as if it did not exist,
  although it does (an answer other than 404 for an ``ok`` caller proves it).

Edit the grid by hand: it is the specification. Keep the columns aligned (the parser
splits on whitespace, so alignment is only for the reader).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    ALLOWED = "ok"
    UNAUTHENTICATED = "401"
    FORBIDDEN = "403"
    HIDDEN = "404"


@dataclass(frozen=True)
class Caller:
    key: str
    title: str
    description: str


CALLERS: tuple[Caller, ...] = (
    Caller("none", "no token", "no Authorization header"),
    Caller("garbage", "garbage token", "a Bearer secret that was never issued"),
    Caller("revoked", "revoked token", "an admin token, revoked"),
    Caller("expired", "expired token", "an admin token past its expiry"),
    Caller("reader", "reader", "role reader"),
    Caller("submitter", "submitter", "role submitter"),
    Caller("reviewer", "reviewer", "role reviewer"),
    Caller("operator", "operator", "role operator"),
    Caller("admin", "admin", "role admin"),
    Caller("auditor", "auditor", "role auditor"),
    Caller(
        "scoped",
        "scoped submitter",
        "role submitter, model scope = the model the request is about",
    ),
    Caller(
        "other",
        "other-scoped submitter",
        "role submitter, model scope = another model",
    ),
)
CALLER_KEYS: tuple[str, ...] = tuple(c.key for c in CALLERS)


@dataclass(frozen=True)
class Rule:
    """One route and the answer each kind of caller gets."""

    method: str
    path: str
    who: str
    cells: Mapping[str, Outcome]

    @property
    def route(self) -> tuple[str, str]:
        return (self.method, self.path)


# "who" is the least role that may call the route (each role holds the rights of those
# before it: reader < submitter < reviewer < operator < admin; auditor reads what a reader
# reads, plus the audit log). "scoped" is the model the request is about: the path's
# {model}, the body's name for POST /models, the request's model for /promotions/{id}.
_GRID = """
#                                                                        none garbage revoked expired reader submitter reviewer operator admin auditor scoped other  who
POST   /api/v1/models                                                    401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models                                                    401  401     401     401     ok     ok        ok       ok       ok    ok      ok     ok     reader
GET    /api/v1/models/{model}                                            401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
PATCH  /api/v1/models/{model}                                            401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
POST   /api/v1/models/{model}/versions                                   401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/versions                                   401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/versions/{version}                         401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/versions/{version}/metrics                 401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/stages/{stage}                             401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
PUT    /api/v1/models/{model}/versions/{version}/artifact                401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/versions/{version}/artifact                401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/policy                                     401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
PUT    /api/v1/models/{model}/policy                                     401  401     401     401     403    403       403      403      ok    403     403    403    admin
POST   /api/v1/models/{model}/versions/{version}/evaluate                401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/promotions                                 401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/promotions                                                401  401     401     401     ok     ok        ok       ok       ok    ok      ok     ok     reader
GET    /api/v1/promotions/{promotion_id}                                 401  401     401     401     ok     ok        ok       ok       ok    ok      ok     404    reader
POST   /api/v1/promotions/{promotion_id}/approve                         401  401     401     401     403    403       ok       ok       ok    403     403    403    reviewer
POST   /api/v1/promotions/{promotion_id}/reject                          401  401     401     401     403    403       ok       ok       ok    403     403    403    reviewer
POST   /api/v1/promotions/{promotion_id}/cancel                          401  401     401     401     403    403       403      ok       ok    403     403    404    requester or operator
POST   /api/v1/models/{model}/versions/{version}/archive                 401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
POST   /api/v1/models/{model}/rollback                                   401  401     401     401     403    403       403      ok       ok    403     403    403    operator
POST   /api/v1/models/{model}/freeze                                     401  401     401     401     403    403       403      ok       ok    403     403    403    operator
POST   /api/v1/models/{model}/unfreeze                                   401  401     401     401     403    403       403      ok       ok    403     403    403    operator
GET    /api/v1/models/{model}/history                                    401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/versions/{version}/reference-profile       401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/versions/{version}/reference-profile       401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/drift-reports                              401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/drift-reports                              401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/drift-reports/{report_id}                  401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/aliases                                    401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/aliases/{alias}                            401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
PUT    /api/v1/models/{model}/aliases/{alias}                            401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
DELETE /api/v1/models/{model}/aliases/{alias}                            401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/aliases/{alias}/history                    401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/versions/@{alias}                          401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/versions/@{alias}/artifact                 401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/versions/{version}/reproductions           401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/versions/{version}/reproductions           401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/artifacts/scrub                                           401  401     401     401     403    403       403      403      ok    403     403    403    admin
POST   /api/v1/models/{model}/versions/{version}/data-checks             401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/versions/{version}/data-checks             401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/serving                                    401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/-/serving                                          401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/observations                               401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
GET    /api/v1/models/{model}/observations                               401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
POST   /api/v1/models/{model}/labels                                     401  401     401     401     403    ok        ok       ok       ok    403     ok     403    submitter
POST   /api/v1/models/{model}/rollouts                                   401  401     401     401     403    403       403      ok       ok    403     403    403    operator
GET    /api/v1/models/{model}/rollouts                                   401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/rollouts/{rollout_id}                                     401  401     401     401     ok     ok        ok       ok       ok    ok      ok     404    reader
POST   /api/v1/rollouts/{rollout_id}/advance                             401  401     401     401     403    403       403      ok       ok    403     403    403    operator
POST   /api/v1/rollouts/{rollout_id}/approve                             401  401     401     401     403    403       ok       ok       ok    403     403    403    reviewer
POST   /api/v1/rollouts/{rollout_id}/pause                               401  401     401     401     403    403       403      ok       ok    403     403    403    operator
POST   /api/v1/rollouts/{rollout_id}/resume                              401  401     401     401     403    403       403      ok       ok    403     403    403    operator
POST   /api/v1/rollouts/{rollout_id}/abort                               401  401     401     401     403    403       403      ok       ok    403     403    403    operator
GET    /api/v1/models/{model}/versions/{version}/shadow-report           401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/ab-report                                  401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/monitoring                                 401  401     401     401     ok     ok        ok       ok       ok    ok      ok     403    reader
GET    /api/v1/models/{model}/drift-settings                             401  401     401     401     403    403       403      403      ok    403     403    403    admin
PUT    /api/v1/models/{model}/drift-settings                             401  401     401     401     403    403       403      403      ok    403     403    403    admin
POST   /api/v1/tokens                                                    401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/tokens                                                    401  401     401     401     403    403       403      403      ok    403     403    403    admin
DELETE /api/v1/tokens/{token_id}                                         401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/principals                                                401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/audit                                                     401  401     401     401     403    403       403      403      ok    ok      403    403    auditor
GET    /api/v1/audit/verify                                              401  401     401     401     403    403       403      403      ok    ok      403    403    auditor
GET    /api/v1/audit/export                                              401  401     401     401     403    403       403      403      ok    ok      403    403    auditor
POST   /api/v1/webhooks                                                  401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/webhooks                                                  401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/webhooks/{webhook_id}                                     401  401     401     401     403    403       403      403      ok    403     403    403    admin
DELETE /api/v1/webhooks/{webhook_id}                                     401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/webhooks/{webhook_id}/deliveries                          401  401     401     401     403    403       403      403      ok    403     403    403    admin
POST   /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver  401  401     401     401     403    403       403      403      ok    403     403    403    admin
GET    /api/v1/healthz                                                   ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/readyz                                                    ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/metrics                                                   ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /healthz                                                          ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /readyz                                                           ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /metrics                                                          ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/openapi.json                                              ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/docs                                                      ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/docs/assets/{name}                                        ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/redoc                                                     ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/problems                                                  ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
GET    /api/v1/problems/{code}                                           ok   ok      ok      ok      ok     ok        ok       ok       ok    ok      ok     ok     anyone
"""  # noqa: E501

NOTES: Mapping[tuple[str, str], str] = {
    ("POST", "/api/v1/models"): (
        "A model-scoped token may register only the model it is scoped to."
    ),
    ("GET", "/api/v1/models"): "A model-scoped token sees only its model.",
    ("GET", "/api/v1/promotions"): "A model-scoped token sees only its model's requests.",
    ("GET", "/api/v1/promotions/{promotion_id}"): (
        "A request of another model is answered 404 to a model-scoped token, as if it "
        "did not exist."
    ),
    ("POST", "/api/v1/promotions/{promotion_id}/approve"): (
        "Never the token that requested the promotion (403, whatever its role); the "
        "matrix's requests are made by a separate submitter token."
    ),
    ("POST", "/api/v1/promotions/{promotion_id}/reject"): (
        "A model-scoped reviewer decides only its model's requests; another model's are "
        "answered 404 (as for approve and cancel), whatever their state."
    ),
    ("POST", "/api/v1/promotions/{promotion_id}/cancel"): (
        "The requester may cancel their own request (any role from submitter); anyone "
        "else needs operator. The matrix's requests are made by a separate submitter "
        "token, so the submitter and reviewer columns show a non-requester. A token "
        "scoped to another model gets 404, as if the request did not exist."
    ),
    ("POST", "/api/v1/models/{model}/rollback"): "Works while the model is frozen.",
    ("GET", "/api/v1/rollouts/{rollout_id}"): (
        "A rollout of another model is answered 404 to a model-scoped token, as if it did "
        "not exist (the actions too, for a scoped token of a role that may act)."
    ),
    ("POST", "/api/v1/rollouts/{rollout_id}/approve"): (
        "Never the token that started the rollout (403, whatever its role)."
    ),
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): "Works while the model is frozen.",
    ("GET", "/api/v1/models/{model}/policy"): (
        "Readable by readers (CI reads the gates it will face); only admins change it."
    ),
    ("GET", "/api/v1/metrics"): (
        "Prometheus metrics: unauthenticated like the probes; expose only to scrapers."
    ),
    ("GET", "/api/v1/openapi.json"): "The API description and its browsable docs.",
}

_CELL = {o.value: o for o in Outcome}


def _parse(grid: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(grid.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        width = 2 + len(CALLER_KEYS)
        if len(fields) <= width:
            raise ValueError(f"authz grid line {number}: expected method, path, cells, who")
        method, path = fields[0], fields[1]
        cells = fields[2:width]
        unknown = [c for c in cells if c not in _CELL]
        if unknown:
            raise ValueError(f"authz grid line {number}: unknown cells {unknown}")
        if (method, path) in seen:
            raise ValueError(f"authz grid line {number}: {method} {path} listed twice")
        seen.add((method, path))
        rules.append(
            Rule(
                method=method,
                path=path,
                who=" ".join(fields[width:]),
                cells={k: _CELL[c] for k, c in zip(CALLER_KEYS, cells, strict=True)},
            )
        )
    return tuple(rules)


MATRIX: tuple[Rule, ...] = _parse(_GRID)
"""Every route of the application, in the order of the grid."""

for _route in NOTES:
    if _route not in {r.route for r in MATRIX}:
        raise ValueError(f"a note for a route the matrix does not list: {_route}")


def rule_for(method: str, path: str) -> Rule:
    for rule in MATRIX:
        if rule.route == (method, path):
            return rule
    raise KeyError((method, path))


# Rendering docs/authorization.md ---------------------------------------------------------

DOC_PATH = "docs/authorization.md"

_INTRO = """\
# Authorization

<!-- Generated from tests/support/authz.py by scripts/render-authz: edit the table there,
then run scripts/render-authz. tests/security/test_authz_matrix.py checks every cell
against the running application and fails when this page drifts from the table. -->

Every request but the probes, the metrics and the API description carries
`Authorization: Bearer <token>`. A token has one **role** and, optionally, a **model
scope**:

- roles, each holding the rights of those before it:
  `reader` < `submitter` (CI) < `reviewer` < `operator` (on-call) < `admin`;
- `auditor` reads the audit log, and what a reader reads, and nothing else;
- a token with a model scope acts only on that model: on any other model it gets 403
  (or 404 where the resource is looked up by id, so that its existence does not leak);
  it can never manage tokens, webhooks or read the audit log.

A token that is missing, malformed, unknown, revoked or expired gets **401** with
`WWW-Authenticate: Bearer`, whatever it asks for; revocation takes effect on the next
request, on every server process. A valid token whose role or scope does not allow the
call gets **403** (problem `forbidden`). Both are `application/problem+json`.

How tokens are kept, compared and shown is in [SECURITY.md](../SECURITY.md).

## Principals

Every token belongs to a **principal**: a person or a service account, unique by name
(`POST /tokens` names it in `principal`, default the token's name, and creates it if
new; `principal_kind` is `person` or `service`, and naming an existing principal with
another kind is a 409 `principal-kind-conflict`). The principal, not the token, is the
identity: it is the actor of audit events, the requester of a promotion and the
approver. One person with two tokens is one principal, so neither of their tokens can
approve a request the other made. `GET /principals` (admin) lists them with the roles
their active tokens hold.

## The last-admin rule

Modelgate refuses, with **409** `last-admin`, any revocation that would leave it without
an administrator:

- revoking the last **active** admin token (not revoked, not expired), whoever asks,
  including that token itself;
- revoking the last admin token **without an expiry** while every other admin token
  expires: that would only delay the lock-out to the last expiry date.

Revocations of admin tokens are serialised (row locks in one order, or SQLite's write
lock), so two admins revoking each other at once leave one of them. Roles are fixed per
token: there is no demotion, only a new token of another role and the revocation of the
old one, which the rule covers. Expiry is set at creation and at least one day ahead, so
an admin token cannot be created already expired. What the server cannot refuse is
time: admin tokens that all carry an expiry (made before this rule, or by the bootstrap
command) still lapse; keep one admin token without an expiry in a safe place.

The way back when every admin token is lost or lapsed is the **direct-database
bootstrap**, run where the server's database is reachable:
`modelgate tokens create --bootstrap --database-url <the server's database URL> --name
<label> --principal <who> --role admin`. It refuses a database that does not exist or
has no Modelgate schema, and prints which database it used. (Restarting a server with
`MODELGATE_BOOTSTRAP_ADMIN_TOKEN` set also creates an admin token when no active one
exists.)

## Reading the matrix

- **ok**: the authorization layer lets the call through (the answer may still be 404,
  409 or 422: those are about the request);
- **401**: refused as unauthenticated; **403**: refused by role or model scope;
- **404**: hidden: answered as if the resource did not exist, although it does.

Columns (kinds of caller):

"""


def render_markdown() -> str:
    """docs/authorization.md, rendered from :data:`MATRIX` and :data:`NOTES`."""
    lines = [_INTRO.rstrip("\n"), ""]
    lines += ["| column | caller |", "|---|---|"]
    lines += [f"| {c.key} | {c.title}: {c.description} |" for c in CALLERS]
    lines += ["", "## The matrix", ""]
    lines.append(
        "| method | path | least role | " + " | ".join(c.key for c in CALLERS) + " | note |"
    )
    lines.append("|---|---|---|" + "---|" * len(CALLERS) + "---|")
    numbered: list[str] = []
    for rule in MATRIX:
        note = NOTES.get(rule.route)
        mark = ""
        if note is not None:
            numbered.append(note)
            mark = f"[{len(numbered)}]"
        cells = " | ".join(rule.cells[c.key].value for c in CALLERS)
        lines.append(f"| {rule.method} | `{rule.path}` | {rule.who} | {cells} | {mark} |")
    lines += ["", "## Notes", ""]
    lines += [f"{i}. {note}" for i, note in enumerate(numbered, 1)]
    total = sum(len(r.cells) for r in MATRIX)
    lines += [
        "",
        f"{len(MATRIX)} routes x {len(CALLERS)} kinds of caller = {total} cells, each "
        "checked by `tests/security/test_authz_matrix.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    from pathlib import Path

    target = Path(__file__).resolve().parents[2] / DOC_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {DOC_PATH}: {len(MATRIX)} routes x {len(CALLERS)} callers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
