"""``webhooks`` (subscriptions and their delivery log) and ``drift`` (reference profiles,
drift reports and the model's drift thresholds)."""

from __future__ import annotations

from typing import Any

import click

from modelgate_client.cli.common import (
    api_options,
    client,
    emit,
    fail,
    fetch_page,
    kv,
    more_hint,
    page_options,
    read_json_file,
    table,
    ts,
)

DELIVERY_STATUSES = ("pending", "failed", "delivered", "dead", "cancelled")


def _object_file(path: str, what: str) -> dict[str, Any]:
    data = read_json_file(path, what)
    if not isinstance(data, dict):
        fail(f"the {what} file {path} must hold a JSON object")
    return data


# webhooks -------------------------------------------------------------------------------


def render_webhook(w: dict[str, Any]) -> str:
    return kv(
        [
            ("webhook", w.get("id")),
            ("url", w.get("url")),
            ("events", w.get("event_types") or "all"),
            ("model", w.get("model") or "all"),
            ("active", w.get("active")),
            ("description", w.get("description")),
            ("created", f"{ts(w.get('created_at'))} by {w.get('created_by')}"),
            ("deleted", ts(w.get("deleted_at")) if w.get("deleted_at") else None),
        ]
    )


def render_webhooks(page: dict[str, Any]) -> str:
    return table(
        ["ID", "URL", "EVENTS", "MODEL", "ACTIVE", "CREATED"],
        [
            [w["id"], w["url"], w.get("event_types") or "all", w.get("model") or "all",
             w.get("active"), ts(w.get("created_at"))]
            for w in page["items"]
        ],
    )  # fmt: skip


def render_deliveries(page: dict[str, Any]) -> str:
    return table(
        ["ID", "EVENT", "MODEL", "STATUS", "ATTEMPTS", "LAST", "ERROR"],
        [
            [d["id"], d["event_type"], d.get("model"), d["status"], d["attempts"],
             d.get("last_status_code"), d.get("last_error")]
            for d in page["items"]
        ],
    )  # fmt: skip


@click.group()
def webhooks() -> None:
    """Webhook subscriptions and their delivery log (admin token)."""


@webhooks.command("create")
@click.argument("target_url", metavar="URL")
@click.option("--secret", required=True, envvar="MODELGATE_WEBHOOK_SECRET", show_envvar=True,
              help="Shared secret that signs every delivery.")  # fmt: skip
@click.option("--event", "events", multiple=True, help="Event type; repeatable (default: all).")
@click.option("--model", default=None, help="Only events of this model.")
@click.option("--description", default="")
@api_options
def webhooks_create(
    target_url: str, secret: str, events: tuple[str, ...], model: str | None, description: str
) -> None:
    """Subscribe URL to events."""
    body: dict[str, Any] = {"url": target_url, "secret": secret, "description": description}
    if events:
        body["event_types"] = list(events)
    if model:
        body["model"] = model
    emit(client().create_webhook(body), render_webhook)


@webhooks.command("list")
@click.option("--include-deleted", is_flag=True)
@page_options
@api_options
def webhooks_list(include_deleted: bool, limit: int, cursor: str | None, all_pages: bool) -> None:
    """The subscriptions."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_webhooks(include_deleted=include_deleted or None, cursor=c, limit=n),
        limit=limit, cursor=cursor, all_pages=all_pages,
    )  # fmt: skip
    emit(page, render_webhooks)
    more_hint(page)


@webhooks.command("show")
@click.argument("webhook_id", type=click.IntRange(1))
@api_options
def webhooks_show(webhook_id: int) -> None:
    """One subscription."""
    emit(client().get_webhook(webhook_id), render_webhook)


@webhooks.command("delete")
@click.argument("webhook_id", type=click.IntRange(1))
@api_options
def webhooks_delete(webhook_id: int) -> None:
    """Stop a subscription (its delivery log is kept)."""
    emit(client().delete_webhook(webhook_id), render_webhook)


@webhooks.command("deliveries")
@click.argument("webhook_id", type=click.IntRange(1))
@click.option("--status", type=click.Choice(DELIVERY_STATUSES), default=None)
@page_options
@api_options
def webhooks_deliveries(
    webhook_id: int, status: str | None, limit: int, cursor: str | None, all_pages: bool
) -> None:
    """The delivery log of a subscription, newest first."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_deliveries(webhook_id, status=status, cursor=c, limit=n),
        limit=limit, cursor=cursor, all_pages=all_pages,
    )  # fmt: skip
    emit(page, render_deliveries)
    more_hint(page)


@webhooks.command("redeliver")
@click.argument("webhook_id", type=click.IntRange(1))
@click.argument("delivery_id", type=click.IntRange(1))
@api_options
def webhooks_redeliver(webhook_id: int, delivery_id: int) -> None:
    """Send a delivery again (a new delivery of the same event)."""
    emit(
        client().redeliver(webhook_id, delivery_id),
        lambda d: f"delivery {d['id']} of event {d['event_id']}: {d['status']}",
    )


# drift ----------------------------------------------------------------------------------


def render_report(r: dict[str, Any]) -> str:
    verdict = "DRIFTED" if r.get("drifted") else "no drift"
    head = (
        f"drift report {r['id']}: {r['model']} version {r['version']}, {r['rows']} rows "
        f"{ts(r.get('window_start'))} .. {ts(r.get('window_end'))}: {verdict} "
        f"(score {r.get('score')}, tau {r.get('tau')}, top feature {r.get('top_feature')})"
    )
    features = r.get("features") or []
    if not features:
        return head
    rows = [[f.get("name"), f.get("score"), f.get("drifted")] for f in features]
    return head + "\n\n" + table(["FEATURE", "SCORE", "DRIFTED"], rows)


def render_reports(page: dict[str, Any]) -> str:
    return table(
        ["ID", "VERSION", "WINDOW END", "ROWS", "SCORE", "DRIFTED", "TOP FEATURE"],
        [
            [r["id"], r["version"], ts(r.get("window_end")), r["rows"], r.get("score"),
             r.get("drifted"), r.get("top_feature")]
            for r in page["items"]
        ],
    )  # fmt: skip


def render_profile(p: dict[str, Any]) -> str:
    return kv([(k, v) for k, v in p.items() if k not in ("features", "sample")])


@click.group()
def drift() -> None:
    """Reference profiles and drift reports of production windows."""


@drift.command("report")
@click.argument("model")
@click.option(
    "--window",
    "window_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSON: DriftReportCreate (sample or features, window_start, window_end).",
)
@api_options
def drift_report(model: str, window_file: str) -> None:
    """Check a production window of MODEL for drift against its reference profile."""
    emit(client().create_drift_report(model, _object_file(window_file, "window")), render_report)


@drift.command("list")
@click.argument("model")
@click.option("--drifted/--not-drifted", default=None, help="Only reports that drifted (or not).")
@page_options
@api_options
def drift_list(
    model: str, drifted: bool | None, limit: int, cursor: str | None, all_pages: bool
) -> None:
    """The drift history of MODEL, newest first."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_drift_reports(model, drifted=drifted, cursor=c, limit=n),
        limit=limit, cursor=cursor, all_pages=all_pages,
    )  # fmt: skip
    emit(page, render_reports)
    more_hint(page)


@drift.command("show")
@click.argument("model")
@click.argument("report_id", type=click.IntRange(1))
@api_options
def drift_show(model: str, report_id: int) -> None:
    """One drift report, feature by feature."""
    emit(client().get_drift_report(model, report_id), render_report)


@drift.group("profile")
def profile() -> None:
    """The reference profile of a version (its training data, for drift checks)."""


@profile.command("set")
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@click.option(
    "--file",
    "profile_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSON: ReferenceProfileCreate (sample or features, dataset).",
)
@api_options
def profile_set(model: str, version: int, profile_file: str) -> None:
    """Record the reference profile of MODEL VERSION."""
    body = _object_file(profile_file, "profile")
    emit(client().put_reference_profile(model, version, body), render_profile)


@profile.command("show")
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@api_options
def profile_show(model: str, version: int) -> None:
    """The reference profile of MODEL VERSION."""
    emit(client().get_reference_profile(model, version), render_profile)


def render_settings(s: dict[str, Any]) -> str:
    return kv(
        [
            ("model", s.get("model")),
            ("tau (PSI)", s.get("tau")),
            ("max null rate", s.get("max_null_rate")),
            ("alpha", s.get("alpha")),
            ("default", s.get("is_default")),
            ("updated", f"{ts(s.get('updated_at'))} by {s.get('updated_by')}"
             if s.get("updated_at") else None),
        ]
    )  # fmt: skip


@drift.group("settings")
def settings() -> None:
    """The thresholds of a model's drift checks (an admin sets them)."""


@settings.command("show")
@click.argument("model")
@api_options
def settings_show(model: str) -> None:
    """The drift thresholds of MODEL (the defaults until set)."""
    emit(client().get_drift_settings(model), render_settings)


@settings.command("set")
@click.argument("model")
@click.option(
    "--tau",
    type=click.FloatRange(0, 100, min_open=True),
    default=None,
    help="Drift when the largest feature score (PSI) exceeds this.",
)
@click.option(
    "--max-null-rate",
    type=click.FloatRange(0, 1),
    default=None,
    help="A column with more nulls than this in a window is a schema issue.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Significance level of the KS and chi-square tests.",
)
@api_options
def settings_set(
    model: str, tau: float | None, max_null_rate: float | None, alpha: float | None
) -> None:  # fmt: skip
    """Change the drift thresholds of MODEL; those not given keep their current values."""
    if tau is None and max_null_rate is None and alpha is None:
        raise click.UsageError("give at least one of --tau, --max-null-rate, --alpha")
    mg = client()
    now = mg.get_drift_settings(model)
    emit(
        mg.put_drift_settings(
            model,
            tau=now["tau"] if tau is None else tau,
            max_null_rate=now["max_null_rate"] if max_null_rate is None else max_null_rate,
            alpha=now["alpha"] if alpha is None else alpha,
        ),
        render_settings,
    )
