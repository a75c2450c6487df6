"""The gate report fits the terminal and never cuts an observed value or a reason."""

from __future__ import annotations

from typing import Any

import pytest

from modelgate_client.cli.commands_promotion import render_rules

LONG_REASON = (
    "accuracy on holdout-2026-11 is 0.9012 against production's 0.9120 (delta -0.0108, "
    "allowed -0.0050): the candidate regresses on the primary metric"
)


def report() -> dict[str, Any]:
    return {
        "rules": [
            {
                "rule": "no_regression_accuracy_holdout_2026_11",
                "kind": "no_regression",
                "passed": False,
                "observed": {
                    "candidate": 0.9012,
                    "production": 0.912,
                    "dataset": "holdout-2026-11",
                },
                "threshold": -0.005,
                "p_value": None,
                "reason": LONG_REASON,
            },
            {
                "rule": "lineage_complete",
                "kind": "lineage_complete",
                "passed": True,
                "observed": {"missing": []},
                "threshold": None,
                "p_value": None,
                "reason": "lineage is complete",
            },
        ]
    }


def _joined(text: str) -> str:
    return " ".join(text.split())


def test_wide_terminal_gets_a_table() -> None:
    text = render_rules(report(), width=400)
    assert text.splitlines()[0].startswith("RULE")
    assert LONG_REASON in text


def test_narrow_terminal_gets_blocks_within_the_width() -> None:
    for width in (80, 60):
        text = render_rules(report(), width=width)
        assert not text.startswith("RULE")
        lines = text.split("\n\nFAILED")[0].splitlines()
        assert max(len(line) for line in lines) <= width, text
        flat = _joined(text)
        assert _joined(LONG_REASON) in flat
        assert "candidate=0.9012 production=0.912 dataset=holdout-2026-11" in flat
        assert "FAIL  no_regression_accuracy_holdout_2026_11" in text


def test_columns_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    assert not render_rules(report()).startswith("RULE")
    monkeypatch.setenv("COLUMNS", "300")
    assert render_rules(report()).startswith("RULE")


def test_the_startup_banner_names_the_console_the_docs_and_the_cli() -> None:
    from app.cli.main import banner

    text = banner("0.0.0.0", 8080)  # noqa: S104
    assert "http://127.0.0.1:8080/ui/" in text
    assert "http://127.0.0.1:8080/api/v1/docs" in text
    assert "export MODELGATE_URL=http://127.0.0.1:8080" in text
    assert "modelgate --help" in text
