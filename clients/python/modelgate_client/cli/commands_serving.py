"""``modelgate alias set|rm|list`` and ``modelgate serving show|watch``."""

from __future__ import annotations

import signal
import threading
from typing import Any
from urllib.parse import quote

import click
import httpx

from modelgate_client.cli.common import (
    api_options,
    client,
    emit,
    fmt,
    json_output,
    kv,
    print_json,
    table,
    ts,
)
from modelgate_client.client import ModelgateConnectionError, ModelgateError, _problem_from


def _aliases_path(model: str) -> str:
    return f"/models/{quote(model, safe='')}/aliases"


def _serving_path(model: str) -> str:
    return f"/models/{quote(model, safe='')}/serving"


@click.group()
def alias() -> None:
    """Named pointers to versions (champion, challenger): set, remove, list."""


@alias.command("set")
@click.argument("model")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.option("--reason", help="Why (kept in the audit log and the alias history).")
@api_options
def alias_set(model: str, name: str, version: int, reason: str | None) -> None:
    """Point alias NAME of MODEL at VERSION (a protected alias: only if its gates pass)."""
    body = client()._json(
        "PUT", f"{_aliases_path(model)}/{quote(name, safe='')}", retry=True,
        json={"version": version, "reason": reason},
    )  # fmt: skip
    emit(body, lambda a: f"{a['model']}@{a['name']} -> version {a['version']} ({a['stage']})")


@alias.command("rm")
@click.argument("model")
@click.argument("name")
@click.option("--reason", help="Why (kept in the audit log and the alias history).")
@api_options
def alias_rm(model: str, name: str, reason: str | None) -> None:
    """Remove alias NAME of MODEL (its history stays)."""
    client()._request(
        "DELETE", f"{_aliases_path(model)}/{quote(name, safe='')}", retry=True,
        params={"reason": reason} if reason else None,
    )  # fmt: skip
    if json_output():
        print_json({"model": model, "alias": name, "removed": True})
    else:
        click.echo(f"{model}@{name} removed")


@alias.command("list")
@click.argument("model")
@api_options
def alias_list(model: str) -> None:
    """The aliases of MODEL and the versions they point at."""
    items = client()._get(_aliases_path(model))
    emit(
        items,
        lambda rows: table(
            ["ALIAS", "VERSION", "STAGE", "BY", "AT"],
            [
                [a["name"], a["version"], a["stage"], a["updated_by"], ts(a["updated_at"])]
                for a in rows
            ],
        ),
    )


@click.group()
def serving() -> None:
    """The serving plan: what serves a model now, and its changes as they come."""


def render_plan(plan: dict[str, Any]) -> str:
    def line(entry: dict[str, Any]) -> list[Any]:
        artifact = entry.get("artifact") or {}
        sha = artifact.get("sha256")
        return [
            entry["version"],
            entry.get("stage"),
            sha[:12] if sha else None,
            artifact.get("size"),
        ]

    rows = [["route", f"{r['weight']:g}%", *line(r)] for r in plan["routes"]]
    rows += [["shadow", f"{s['share']:g}%", *line(s)] for s in plan["shadows"]]
    rows += [[f"@{a['name']}", "", *line(a)] for a in plan["aliases"]]
    production = plan.get("production")
    head = kv([("model", plan["model"]), ("revision", plan["revision"]),
               ("production", production["version"] if production else None)])  # fmt: skip
    if not rows:
        return head
    return head + "\n\n" + table(["ENTRY", "SHARE", "VERSION", "STAGE", "SHA256", "SIZE"], rows)


@serving.command("show")
@click.argument("model")
@api_options
def serving_show(model: str) -> None:
    """The serving plan of MODEL: revision, routes, shadows, aliases and their artifacts."""
    emit(client()._get(_serving_path(model)), render_plan)


@serving.command("watch")
@click.argument("model")
@click.option("--after", type=click.IntRange(0), help="Start after this revision.")
@click.option("--wait", type=click.FloatRange(1, 60), default=25.0, show_default=True,
              help="Seconds each long poll may be held.")  # fmt: skip
@api_options
def serving_watch(model: str, after: int | None, wait: float) -> None:
    """Print each new revision of MODEL's plan as it comes, until interrupted."""
    http: httpx.Client = client()._http
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            params: dict[str, Any] = {} if after is None else {"after": after, "wait": wait}
            try:
                response = http.get(_serving_path(model), params=params, timeout=wait + 15)
            except httpx.TransportError as exc:
                raise ModelgateConnectionError(str(exc)) from exc
            if response.status_code == 304:
                continue
            if not response.is_success:
                raise _problem_from(response)
            plan = response.json()
            after = int(plan["revision"])
            if json_output():
                click.echo(response.text)
            else:
                production = plan.get("production")
                routes = " ".join(f"v{r['version']}:{r['weight']:g}%" for r in plan["routes"])
                aliases = " ".join(f"@{a['name']}=v{a['version']}" for a in plan["aliases"])
                click.echo(
                    f"revision {after}  production {fmt(production and production['version'])}"
                    f"  routes {routes or '-'}  aliases {aliases or '-'}"
                )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["ModelgateError", "alias", "serving"]
