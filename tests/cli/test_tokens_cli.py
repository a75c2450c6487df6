"""``modelgate tokens create``: over HTTP by default; ``--bootstrap`` writes straight to a
database that must exist, and says which one it used."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.cli.conftest import Cli, Tokens
from tests.support.api import ADMIN_TOKEN


def test_create_talks_http_with_the_admin_token(cli: Cli, tmp_path: Path) -> None:
    """Run from a directory of its own, it still reaches the server (no local database)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = cli.run(
        "tokens", "create", "--name", "alice-ci", "--role", "submitter",
        "--principal", "alice", "--output", "json",
        token=ADMIN_TOKEN, cwd=elsewhere,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert (created["name"], created["principal"], created["role"]) == (
        "alice-ci", "alice", "submitter",
    )  # fmt: skip
    assert list(elsewhere.iterdir()) == []  # no SQLite file appeared
    assert "items" in cli.json("models", "list", token=created["token"])

    plain = cli.run("tokens", "create", "--name", "bob", "--role", "reader", token=ADMIN_TOKEN)
    assert plain.returncode == 0, plain.stderr
    secret = plain.stdout.strip()
    assert secret.startswith("mgt_")
    assert "\n" not in secret
    assert "shown once" in plain.stderr

    listed = cli.json("tokens", "principals", "--all", token=ADMIN_TOKEN)
    names = {p["name"] for p in listed["items"]}
    assert {"alice", "bob"} <= names


def test_create_over_http_needs_an_admin_token(cli: Cli, tokens: Tokens) -> None:
    refused = cli.run("tokens", "create", "--name", "x", "--role", "admin", token=tokens.reviewer)
    assert refused.returncode == 3
    assert "403" in refused.stderr
    missing = cli.run("tokens", "create", "--name", "x", "--role", "admin", token=None)
    assert missing.returncode == 2
    assert "MODELGATE_TOKEN" in missing.stderr


def test_bootstrap_refuses_a_database_that_does_not_exist(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "modelgate.db"
    done = cli.run(
        "tokens", "create", "--bootstrap", "--name", "x", "--role", "admin",
        "--database-url", f"sqlite:///{missing}", token=None,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"no database at {missing}" in done.stderr
    assert "refusing to create" in done.stderr
    assert not missing.parent.exists()
    assert done.stdout == ""

    unnamed = cli.run("tokens", "create", "--bootstrap", "--name", "x", "--role", "admin")
    assert unnamed.returncode == 2
    assert "--database-url" in unnamed.stderr


def test_bootstrap_refuses_a_file_without_the_schema(cli: Cli, tmp_path: Path) -> None:
    stray = tmp_path / "stray.db"
    sqlite3.connect(stray).close()
    done = cli.run(
        "tokens", "create", "--bootstrap", "--name", "x", "--role", "admin",
        "--database-url", f"sqlite:///{stray}", token=None,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"using database sqlite:///{stray}" in done.stderr
    assert "not a Modelgate database" in done.stderr
    assert done.stdout == ""


def test_bootstrap_writes_to_the_named_database(
    cli: Cli, server_settings: dict[str, str], tmp_path: Path
) -> None:
    url = server_settings["MODELGATE_DATABASE_URL"]
    done = cli.run(
        "tokens", "create", "--bootstrap", "--name", "break-glass", "--role", "admin",
        "--principal", "oncall-lead", "--database-url", url, token=None, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "using database" in done.stderr
    if url.startswith("sqlite"):
        assert url.removeprefix("sqlite:///") in done.stderr
    secret = done.stdout.strip()
    tokens = cli.json("tokens", "list", "--all", token=secret)
    mine = [t for t in tokens["items"] if t["name"] == "break-glass"]
    assert [t["principal"] for t in mine] == ["oncall-lead"]
    assert mine[0]["created_by"].startswith("cli:")
