"""``modelgate webhooks`` and ``modelgate drift`` against a live server."""

from __future__ import annotations

import json
from pathlib import Path

from modelgate_client import ModelgateClient
from tests.cli.conftest import Cli, Tokens
from tests.cli.test_cli_live import add_version, reviewer_client, to_production
from tests.drift._data import reference_sample, window

__all__ = ["reviewer_client"]


def test_webhook_commands(cli: Cli, tokens: Tokens, model: str) -> None:
    created = cli.json(
        "webhooks", "create", "http://127.0.0.1:9/hook", "--secret", "s" * 20,
        "--event", "promotion.applied", "--model", model, token=tokens.admin,
    )  # fmt: skip
    hook = created["id"]
    assert created["event_types"] == ["promotion.applied"]
    listed = cli.json("webhooks", "list", "--all", token=tokens.admin)
    assert hook in [w["id"] for w in listed["items"]]
    shown = cli.run("webhooks", "show", str(hook), token=tokens.admin)
    assert shown.returncode == 0, shown.stderr
    assert "http://127.0.0.1:9/hook" in shown.stdout
    deliveries = cli.json("webhooks", "deliveries", str(hook), token=tokens.admin)
    assert deliveries["items"] == []
    assert cli.run("webhooks", "delete", str(hook), token=tokens.admin).returncode == 0
    refused = cli.run("webhooks", "list")  # the submitter token
    assert refused.returncode == 3
    assert "403" in refused.stderr


def test_drift_commands(
    cli: Cli,
    admin: ModelgateClient,
    reviewer_client: ModelgateClient,
    model: str,
    tmp_path: Path,
) -> None:
    version = add_version(admin, model)
    to_production(admin, reviewer_client, model, version)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(reference_sample(n=500)))
    done = cli.run("drift", "profile", "set", model, str(version), "--file", str(profile))
    assert done.returncode == 0, done.stderr
    shown = cli.json("drift", "profile", "show", model, str(version))
    assert shown["version"] == version
    batch = tmp_path / "window.json"
    batch.write_text(json.dumps(window(n=300, shift=40.0)))
    report = cli.json("drift", "report", model, "--window", str(batch))
    assert report["drifted"] is True
    text = cli.run("drift", "show", model, str(report["id"]))
    assert text.returncode == 0, text.stderr
    assert "DRIFTED" in text.stdout
    listed = cli.json("drift", "list", model, "--drifted")
    assert [r["id"] for r in listed["items"]] == [report["id"]]
    assert cli.run("drift", "list", model, "--query", "items.0.id").stdout.strip() == str(
        report["id"]
    )


def test_drift_settings_commands(cli: Cli, tokens: Tokens, model: str) -> None:
    shown = cli.json("drift", "settings", "show", model, token=tokens.admin)
    assert shown["is_default"] is True
    changed = cli.json("drift", "settings", "set", model, "--tau", "0.35", token=tokens.admin)
    # Only --tau changed; the other thresholds kept their values.
    assert (changed["tau"], changed["max_null_rate"], changed["alpha"]) == (
        0.35, shown["max_null_rate"], shown["alpha"],
    )  # fmt: skip
    assert changed["is_default"] is False
    text = cli.run("drift", "settings", "show", model, token=tokens.admin)
    assert text.returncode == 0, text.stderr
    assert "0.35" in text.stdout
    bad = cli.run("drift", "settings", "set", model, "--alpha", "2", token=tokens.admin)
    assert bad.returncode == 2
    nothing = cli.run("drift", "settings", "set", model, token=tokens.admin)
    assert nothing.returncode == 2
    refused = cli.run("drift", "settings", "set", model, "--tau", "0.5")  # the submitter
    assert refused.returncode == 3
    assert cli.json("drift", "settings", "show", model, token=tokens.admin)["tau"] == 0.35
