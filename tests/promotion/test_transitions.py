"""The transition core: every stage move passes through ``transitions.move`` and ends with
its publish step, and no other code in ``app/`` writes a version's stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.promotion import transitions
from app.promotion.transitions import Moved, StagePointer
from tests.support.api import API, create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy, rollback

MODEL = "moved"
APP = Path(__file__).resolve().parents[2] / "app"


def test_every_move_ends_with_the_publish_step(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    seen: list[tuple[str, int, str, int | None]] = []
    publish = transitions.on_pointer_moved

    def spy(session: object, moved: Moved) -> None:
        replaced = moved.replaced.version if moved.replaced else None
        assert isinstance(moved.move.pointer, StagePointer)
        seen.append(
            (moved.move.via, moved.move.version.version, moved.move.pointer.stage, replaced)
        )
        publish(session, moved)  # type: ignore[arg-type]

    monkeypatch.setattr(transitions, "on_pointer_moved", spy)
    v1, v2, v3 = (new_version(client, MODEL) for _ in range(3))
    promote(client, MODEL, v1, "production", status="applied")
    promote(client, MODEL, v2, "staging", status="applied")
    promote(client, MODEL, v2, "production", status="applied")
    assert rollback(client, MODEL, reason="drill").status_code == 200
    archived = client.post(f"{API}/models/{MODEL}/versions/{v3}/archive", json={})
    assert archived.status_code == 200, archived.text
    assert seen == [
        ("promotion", v1, "production", None),
        ("promotion", v2, "staging", None),
        ("promotion", v2, "production", v1),
        ("rollback", v1, "production", v2),
        ("archive", v3, "archived", None),
    ]


def _stage_writes(path: Path) -> list[tuple[str, int]]:
    """``<something>.stage = ...`` assignments in one module: (target's name, line)."""
    writes: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [
                t for target in node.targets for t in ast.walk(target) if isinstance(t, ast.expr)
            ]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == "stage":
                owner = target.value.id if isinstance(target.value, ast.Name) else "?"
                writes.append((owner, target.lineno))
    return writes


def _calls(path: Path, name: str) -> list[int]:
    """Lines of the calls of ``<something>.name(...)`` in one module."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
    ]


def _values_setting_stage(path: Path) -> list[int]:
    """Lines of Core ``.values(stage=...)`` in one module (statements that write a stage)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "values"
        and any(k.arg == "stage" for k in node.keywords)
    ]


def test_only_the_transition_core_writes_a_stage() -> None:
    modules = sorted(APP.rglob("*.py"))

    def where(found: dict[Path, list[int]]) -> dict[str, int]:
        return {str(path.relative_to(APP)): len(lines) for path, lines in found.items() if lines}

    # The stage is written by one function, promotion/repository.set_stage (a version's
    # row and its metrics' copy), and only the transition core calls it.
    assert where({path: _values_setting_stage(path) for path in modules}) == {
        "promotion/repository.py": 2
    }
    assert where({path: _calls(path, "set_stage") for path in modules}) == {
        "promotion/transitions.py": 3
    }
    # No mapped object's stage is assigned anywhere, but a new metric row's, which copies
    # its version's stage when it is inserted: not a move.
    elsewhere = {
        str(path.relative_to(APP)): writes for path in modules if (writes := _stage_writes(path))
    }
    assert {name: [owner for owner, _ in w] for name, w in elsewhere.items()} == {
        "registry/service.py": ["row", "row"]
    }
