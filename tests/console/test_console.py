"""The console in a real browser (headless Chromium) against a live server: sign-in,
review and approve, reject, roll back, freeze, the reader, CSRF and cross-site forms,
session expiry and sign-out, and that no page asks another host for anything."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from tests.console.conftest import Console, shoot
from tests.console.seed import CHURN, FRAUD, RANKER
from tests.rollouts.conftest import model_with_candidate, observations
from tests.support.api import ADMIN_TOKEN, auth
from tests.support.flows import start_rollout
from tests.support.servers import running_servers

expect = pytest.importorskip("playwright.sync_api").expect

Page = Any


def sign_in(context: Any, console: Console, secret: str, path: str = "/ui/") -> Page:
    page = context.new_page()
    page.goto(console.base_url + path)
    expect(page.get_by_label("API token")).to_be_visible()
    page.get_by_label("API token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def promotion(console: Console, request_id: int) -> dict[str, Any]:
    response = console.api.get(f"/api/v1/promotions/{request_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def model(console: Console, name: str) -> dict[str, Any]:
    response = console.api.get(f"/api/v1/models/{name}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def last_event(console: Console, action: str, model_name: str) -> dict[str, Any]:
    response = console.api.get("/api/v1/audit", params={"action": action, "model": model_name})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items, f"no {action} event for {model_name}"
    event: dict[str, Any] = items[-1]
    return event


def test_sign_in_with_a_wrong_token_shows_an_error_and_sets_nothing(
    context: Any, console: Console
) -> None:
    page = context.new_page()
    response = page.goto(console.base_url + "/")
    assert response is not None
    assert response.ok
    assert urlsplit(page.url).path == "/ui/sign-in"
    shoot(page, "01-sign-in")
    page.get_by_label("API token").fill("mgt_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    assert not [c for c in context.cookies() if c["name"] == "modelgate_console"]
    shoot(page, "02-sign-in-error")

    page.get_by_label("API token").fill(console.secret_of(console.seeded.team.reviewer))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    (cookie,) = [c for c in context.cookies() if c["name"] == "modelgate_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain HTTP here; Secure is set behind HTTPS
    for name in ("Models", "Review queue", "Audit"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    # Only a hash of the session id is stored.
    engine = create_engine(console.database_url)
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT id_hash FROM console_sessions"))]
    engine.dispose()
    assert cookie["value"] not in stored
    assert len(stored) >= 1


def test_reviewer_reads_the_promotion_page_and_approves(context: Any, console: Console) -> None:
    seeded = console.seeded
    page = sign_in(context, console, console.secret_of(seeded.team.reviewer), "/ui/promotions")
    shoot(page, "03-review-queue")
    page.get_by_role("link", name=f"#{seeded.passing_request}", exact=True).click()
    expect(page.get_by_role("heading", name="Gate rules")).to_be_visible()
    gates = page.locator("table.gates")
    expect(gates.get_by_text("passed", exact=True)).to_have_count(8)
    expect(gates).to_contain_text("accuracy at least 0.88")
    metrics = page.locator("table.metrics")
    expect(metrics).to_contain_text("country=DE")
    expect(metrics).to_contain_text("recent-traffic")
    expect(metrics.locator("tr.verdict-better").first).to_be_visible()
    expect(page.get_by_text("transactions@2026-11-07")).to_be_visible()
    # The gate table fits 1280 px: no horizontal scrolling, nor of the page.
    assert gates.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Times are shown in the viewer's time zone (Berlin here), UTC on hover.
    first_time = page.locator("time").first
    expect(first_time).to_have_attribute("title", re.compile(r"UTC$"))
    expect(first_time).to_contain_text(re.compile(r"CET|GMT\+1"))
    shoot(page, "04-promotion-passing")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "05-promotion-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_label("Comment").fill("Checked slices and lineage; ship it.")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_contain_text("Approved")
    shoot(page, "06-promotion-approved")
    body = promotion(console, seeded.passing_request)
    assert body["status"] == "applied"
    reviewer = seeded.team.name(seeded.team.reviewer)
    assert [a["reviewer"] for a in body["approvals"]] == [reviewer]
    assert model(console, FRAUD)["production_version"] == body["version"]
    event = last_event(console, "promotion.approved", FRAUD)
    assert event["actor"] == reviewer  # the same actor the API would record
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)


def test_failing_report_shows_failed_rules_and_the_breaking_changes(
    context: Any, console: Console
) -> None:
    seeded = console.seeded
    page = sign_in(
        context, console, console.secret_of(seeded.team.reviewer),
        path=f"/ui/promotions/{seeded.failing_request}",
    )  # fmt: skip
    gates = page.locator("table.gates")
    expect(gates.get_by_text("failed", exact=True).first).to_be_visible()
    # Failed rules come first.
    expect(gates.locator("tbody tr").first.locator(".result")).to_have_text("failed")
    expect(page.locator("table.diff").first).to_contain_text("data_version")
    expect(page.get_by_text("transactions@2026-12-01-sampled")).to_be_visible()
    expect(page.get_by_text("breaking").first).to_be_visible()
    expect(page.locator("table.diff").last).to_contain_text("country")
    assert gates.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    shoot(page, "07-promotion-failing")


def test_reviewer_rejects_with_a_comment(context: Any, console: Console) -> None:
    seeded = console.seeded
    page = sign_in(
        context, console, console.secret_of(seeded.team.reviewer2),
        path=f"/ui/promotions/{seeded.churn_request}",
    )  # fmt: skip
    page.get_by_label("Comment").fill("Recall on new customers dropped; retrain with Q4 data.")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status").first).to_contain_text("Rejected")
    body = promotion(console, seeded.churn_request)
    assert body["status"] == "rejected"
    assert body["decided_by"] == seeded.team.name(seeded.team.reviewer2)
    assert body["decision_comment"].startswith("Recall on new customers")


def test_the_requester_sees_no_decision_buttons(context: Any, console: Console) -> None:
    seeded = console.seeded
    page = sign_in(
        context, console, console.secret_of(seeded.team.reviewer2),
        path=f"/ui/promotions/{seeded.own_request}",
    )  # fmt: skip
    expect(page.get_by_text("You requested this promotion")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Reject")).to_have_count(0)
    expect(page.get_by_label("Comment")).to_have_count(0)


def test_reader_sees_no_buttons_and_a_forged_post_is_refused(
    context: Any, console: Console
) -> None:
    seeded = console.seeded
    page = sign_in(context, console, console.token("reader"))
    page.goto(f"{console.base_url}/ui/promotions/{seeded.own_request}")
    expect(page.get_by_role("heading", name="Gate rules")).to_be_visible()
    for name in ("Approve", "Reject"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_label("Comment")).to_have_count(0)
    page.goto(f"{console.base_url}/ui/models/{RANKER}")
    for name in ("Roll back", "Freeze", "Unfreeze"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    shoot(page, "08-model-as-reader")

    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    before = model(console, RANKER)
    for path, form in (
        (f"/ui/promotions/{seeded.own_request}/approve", {"comment": "forged"}),
        (f"/ui/promotions/{seeded.own_request}/reject", {"comment": "forged"}),
        (f"/ui/models/{RANKER}/rollback", {"reason": "forged"}),
        (f"/ui/models/{RANKER}/freeze", {"reason": "forged"}),
    ):
        answer = page.request.post(
            console.base_url + path, form={"csrf_token": csrf or "", **form}, max_redirects=0
        )
        assert answer.status == 403, (path, answer.status)
    assert promotion(console, seeded.own_request)["status"] == "pending_approval"
    after = model(console, RANKER)
    assert (after["production_version"], after["frozen"]) == (
        before["production_version"],
        before["frozen"],
    )
    # The audit page needs the auditor role.
    page.goto(console.base_url + "/ui/audit")
    expect(page.get_by_role("alert")).to_contain_text("auditor")


def test_posts_without_a_valid_csrf_token_or_from_another_site_are_refused(
    context: Any, console: Console
) -> None:
    seeded = console.seeded
    page = sign_in(context, console, console.secret_of(seeded.team.operator))
    for form in ({}, {"csrf_token": "0" * 64}):
        answer = page.request.post(
            f"{console.base_url}/ui/models/{CHURN}/freeze",
            form={"reason": "csrf test", **form},
            max_redirects=0,
        )
        assert answer.status == 403
    assert model(console, CHURN)["frozen"] is False

    # A page on another site posting a form to the console: the Lax cookie stays home.
    # The attacker's page is answered by the test itself (no request leaves the machine).
    evil = "http://attacker.test/form.html"
    html = (
        f'<form id="f" method="post" action="{console.base_url}/ui/models/{CHURN}/freeze">'
        '<input name="reason" value="cross-site"><input name="csrf_token" value="x"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    page.route(evil, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    with page.expect_response(re.compile(r"/ui/models/.*/freeze$")) as info:
        page.goto(evil)
    assert info.value.status == 403
    assert model(console, CHURN)["frozen"] is False
    page.unroute(evil)


def test_operator_rolls_back_freezes_and_unfreezes(context: Any, console: Console) -> None:
    seeded = console.seeded
    operator = seeded.team.name(seeded.team.operator)
    context.clear_cookies()
    page = sign_in(context, console, console.secret_of(seeded.team.operator))
    page.get_by_role("link", name="Models", exact=True).click()
    shoot(page, "09-models")
    page.get_by_role("link", name=RANKER, exact=True).click()
    expect(page.get_by_text("v2 serves now; v1 would serve.")).to_be_visible()
    shoot(page, "10-model-operator")
    page.get_by_role("button", name="Roll back").click()
    expect(page.get_by_text("v2 serves now; v1 will serve.")).to_be_visible()
    shoot(page, "11-rollback-confirm")
    page.get_by_label("Reason").fill("p99 latency doubled after the v2 release (INC-4411)")
    page.get_by_role("button", name="Roll back").click()
    expect(page.get_by_role("status").first).to_contain_text("v1 serves now")
    assert model(console, RANKER)["production_version"] == 1
    event = last_event(console, "model.rolled_back", RANKER)
    assert event["actor"] == operator
    expect(page.locator("ol.timeline")).to_contain_text("rollback")

    page.get_by_role("button", name="Freeze").click()
    page.get_by_label("Reason").fill("incident INC-4411 open")
    page.get_by_role("button", name="Freeze").click()
    expect(page.locator(".banner.frozen")).to_contain_text(operator)
    expect(page.locator(".banner.frozen")).to_contain_text("incident INC-4411 open")
    assert model(console, RANKER)["frozen"] is True
    shoot(page, "12-model-frozen")
    page.get_by_role("button", name="Unfreeze").click()
    page.get_by_label("Reason").fill("incident closed")
    page.get_by_role("button", name="Unfreeze").click()
    expect(page.locator(".banner.frozen")).to_have_count(0)
    assert model(console, RANKER)["frozen"] is False


def test_version_compare_and_audit_pages(context: Any, console: Console) -> None:
    page = sign_in(context, console, console.token("admin"))
    page.goto(f"{console.base_url}/ui/models/{FRAUD}/versions/10")
    expect(page.get_by_role("heading", name="Gates now (dry run)")).to_be_visible()
    expect(page.get_by_text("transactions@2026-12-01-sampled")).to_be_visible()
    expect(page.locator("code.digest")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    shoot(page, "13-version")
    page.goto(f"{console.base_url}/ui/models/{FRAUD}/compare?a=5&b=10")
    expect(page.locator("table.metrics")).to_contain_text("country=US")
    shoot(page, "14-compare")
    page.goto(f"{console.base_url}/ui/models/{FRAUD}")
    shoot(page, "15-model")
    page.get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Hash chain verified")
    page.get_by_label("Actor").fill("bootstrap-admin")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.audit tbody tr").first).to_contain_text("bootstrap-admin")
    shoot(page, "16-audit")


def test_sign_out_ends_the_session_and_a_revoked_token_ends_it_too(
    context: Any, browser: Any, console: Console
) -> None:
    page = sign_in(context, console, console.secret_of(console.seeded.team.reviewer))
    stolen = [c for c in context.cookies() if c["name"] == "modelgate_console"]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    # The cookie, replayed after sign-out, opens nothing.
    replay = browser.new_context()
    replay.add_cookies(stolen)
    again = replay.new_page()
    again.goto(console.base_url + "/ui/promotions")
    assert urlsplit(again.url).path == "/ui/sign-in"
    replay.close()

    # Revoking the token ends the sessions opened with it.
    response = console.api.post("/api/v1/tokens", json={"name": "short-lived", "role": "reviewer"})
    token = response.json()
    page = sign_in(context, console, token["token"])
    assert console.api.delete(f"/api/v1/tokens/{token['id']}").status_code in (200, 204)
    page.goto(console.base_url + "/ui/promotions")
    assert urlsplit(page.url).path == "/ui/sign-in"


def test_an_idle_session_expires(browser: Any, console: Console) -> None:
    settings = {**console.settings, "CONSOLE_IDLE_SECONDS": "2", "AUTO_MIGRATE": "false"}
    with running_servers(settings) as (server,):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(server.base_url + "/ui/sign-in")
            page.get_by_label("API token").fill(ADMIN_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            time.sleep(3)
            page.goto(server.base_url + "/ui/models")
            assert urlsplit(page.url).path == "/ui/sign-in"
        finally:
            context.close()


def _rollout(console: Console, rollout_id: int) -> dict[str, Any]:
    response = console.api.get(f"/api/v1/rollouts/{rollout_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_rollout_shows_its_analysis_a_reader_sees_no_buttons_and_an_operator_aborts(
    context: Any, console: Console
) -> None:
    seeded = console.seeded
    name = model_with_candidate(console.api, f"console-roll-{uuid.uuid4().hex[:6]}")
    steps = [{"weight": 20, "hold": {"approval": True, "min_observations": 10**9}}]
    rollout_id = start_rollout(console.api, name, steps, interval=0.2)["id"]
    batch = observations(
        np.random.default_rng(11), {1: 80.0, 2: 20.0}, 3000, {1: 0.01, 2: 0.01}, prefix="ui"
    )
    posted = console.api.post(f"/api/v1/models/{name}/observations", json={"observations": batch})
    assert posted.status_code == 202, posted.text
    for _ in range(400):  # the driver's first look (a bounded wait, not a timing test)
        if _rollout(console, rollout_id)["look_count"] >= 1:
            break
        time.sleep(0.05)
    assert _rollout(console, rollout_id)["look_count"] >= 1

    # A reader sees the rollout and its analysis, and no button; a forged post is refused.
    page = sign_in(context, console, console.token("reader"), f"/ui/models/{name}")
    expect(page.locator(".rollout-box")).to_contain_text("canary")
    expect(page.locator(".rollout-box")).to_contain_text("v1 80 % · v2 20 %")
    expect(page.locator(".rollout-box")).to_contain_text("a reviewer's approval")
    page.get_by_role("link", name=f"Rollout #{rollout_id}").click()
    expect(page.get_by_role("heading", name="Analysis looks")).to_be_visible()
    first = page.locator("article.look").last
    expect(first).to_contain_text("Look 1")
    analysis = first.locator("table.analysis")
    expect(analysis).to_contain_text("errors")
    expect(analysis).to_contain_text("latency")
    expect(page.locator("ol.decisions")).to_contain_text("started")
    expect(page.locator("ol.decisions")).to_contain_text("test rollout")
    for button in ("Advance", "Pause", "Resume", "Abort", "Approve step 1"):
        expect(page.get_by_role("button", name=button)).to_have_count(0)
    expect(page.get_by_text("Approving needs the reviewer role")).to_be_visible()
    shoot(page, "17-rollout-as-reader")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(
        f"{console.base_url}/ui/models/{name}/rollouts/{rollout_id}/abort",
        form={"csrf_token": csrf or "", "reason": "forged"}, max_redirects=0,
    )  # fmt: skip
    assert answer.status == 403
    assert _rollout(console, rollout_id)["state"] == "running"

    # The operator approves the step, then aborts; the page and the API agree.
    operator = seeded.team.name(seeded.team.operator)
    context.clear_cookies()
    page = sign_in(
        context, console, console.secret_of(seeded.team.operator),
        f"/ui/models/{name}/rollouts/{rollout_id}",
    )  # fmt: skip
    for button in ("Advance", "Pause", "Abort", "Approve step 1"):
        expect(page.get_by_role("button", name=button)).to_have_count(1)
    shoot(page, "18-rollout-operator")
    page.get_by_label("Approval comment").fill("traffic looks fine")
    page.get_by_role("button", name="Approve step 1").click()
    expect(page.get_by_role("status").first).to_contain_text("Approved")
    expect(page.get_by_role("button", name="Approve step 1")).to_have_count(0)
    page.get_by_label("Abort reason").fill("pager: checkout errors (INC-5120)")
    page.get_by_role("button", name="Abort").click()
    expect(page.get_by_role("status").first).to_contain_text("v1 takes all traffic")
    expect(page.locator("#rollout-state")).to_have_text("aborted")
    expect(page.locator("#rollout-weights")).to_have_text("v1 100 %")
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    expect(page.locator("ol.decisions li").first).to_contain_text("aborted by " + operator)
    shoot(page, "19-rollout-aborted")
    api = _rollout(console, rollout_id)
    assert api["state"] == "aborted"
    assert api["reason"] == "pager: checkout errors (INC-5120)"
    assert api["weights"] == {"1": 100.0}
    assert [(d["action"], d["actor"]) for d in api["decisions"][-2:]] == [
        ("approved", operator), ("aborted", operator),
    ]  # fmt: skip
    assert last_event(console, "rollout.aborted", name)["actor"] == operator
    page.get_by_role("link", name="Rollouts").click()
    expect(page.locator("table.rollouts")).to_contain_text("pager: checkout errors")


def test_pages_ask_no_other_host_and_send_a_strict_policy(console: Console) -> None:
    """Runs last: every request any test's pages made went to the console's own origin."""
    assert console.requested, "no browser test ran before this one"
    origin = console.base_url
    foreign = {
        u for u in console.requested if not u.startswith(origin + "/") and u != origin
        and not u.startswith("http://attacker.test/")  # answered by the test itself
    }  # fmt: skip
    assert not foreign
    with httpx.Client(base_url=origin) as client:
        response = client.get("/ui/sign-in")
        csp = response.headers["content-security-policy"]
        for directive in (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ):
            assert directive in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert client.get("/").headers["location"] == "/ui/"
        # The API is untouched by the console: a bearer token still works, a cookie does not.
        assert client.get("/api/v1/models", headers=auth(ADMIN_TOKEN)).status_code == 200
