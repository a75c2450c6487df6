"""The console's comparisons: metric deltas by direction, lineage and signature diffs,
gate rows (pure functions, no server)."""

from __future__ import annotations

from app.console import sessions, views
from app.gates.catalogue import Direction
from app.promotion.schemas import RuleReport
from app.registry.schemas import MetricRead


def metric(
    name: str, value: float | None, dataset: str = "holdout", slice: str | None = None
) -> MetricRead:
    return MetricRead(
        name=name, value=value, dataset=dataset, slice=slice, sample_count=None, source="submitted"
    )


def test_deltas_are_judged_by_each_metrics_direction_and_slices_follow_their_dataset() -> None:
    groups = views.compare_metrics(
        [metric("accuracy", 0.92), metric("rmse", 0.30), metric("accuracy", 0.80, slice="DE"),
         metric("my_score", 5.0), metric("auc", 0.9)],
        [metric("accuracy", 0.90), metric("rmse", 0.25), metric("accuracy", 0.80, slice="DE"),
         metric("my_score", 4.0), metric("f1", 0.7)],
        {"my_score": Direction.LOWER},
    )  # fmt: skip
    assert [(g.dataset, g.slice) for g in groups] == [("holdout", None), ("holdout", "DE")]
    whole = {r.name: r for r in groups[0].rows}
    assert whole["accuracy"].verdict == "better"
    assert abs(whole["accuracy"].delta - 0.02) < 1e-12  # type: ignore[operator]
    assert whole["rmse"].verdict == "worse"  # lower is better: +0.05 is a regression
    assert whole["my_score"].verdict == "worse"  # the policy's direction wins
    assert whole["auc"].verdict == "new"
    assert whole["f1"].verdict == "gone"
    assert groups[1].rows[0].verdict == "same"


def test_lineage_changes_list_fields_then_each_hyperparameter() -> None:
    changes = views.lineage_changes(
        {"data_version": "d2", "code_commit": "abc", "hyperparameters": {"eta": 0.1, "depth": 6}},
        {"data_version": "d1", "code_commit": "abc", "hyperparameters": {"eta": 0.3, "old": 1}},
    )
    assert [(c.name, c.before, c.after, c.kind) for c in changes] == [
        ("data_version", "d1", "d2", "changed"),
        ("hyperparameters.depth", None, "6", "added"),
        ("hyperparameters.eta", "0.3", "0.1", "changed"),
        ("hyperparameters.old", "1", None, "removed"),
    ]


def test_signature_changes_mark_what_breaks_production_callers() -> None:
    production = {
        "inputs": [
            {"name": "amount", "type": "float"},
            {"name": "country", "type": "categorical", "categories": ["DE", "FR"]},
            {"name": "age", "type": "integer", "nullable": True},
        ],
        "outputs": [{"name": "score", "type": "float"}],
    }
    candidate = {
        "inputs": [
            {"name": "amount", "type": "integer"},
            {"name": "age", "type": "integer", "nullable": True},
            {"name": "device", "type": "string"},
            {"name": "hint", "type": "string", "required": False},
        ],
        "outputs": [{"name": "score", "type": "float"}, {"name": "label", "type": "string"}],
    }
    found = {
        (c.side, c.name, c.kind): c.breaking for c in views.signature_changes(candidate, production)
    }
    assert found == {
        ("input", "amount", "retyped"): True,
        ("input", "country", "removed"): True,
        ("input", "device", "added"): True,
        ("input", "hint", "added"): False,
        ("output", "label", "added"): False,
    }


def test_rule_rows_put_failures_first_and_fold_configuration_echoes() -> None:
    rows = views.rule_rows(
        [
            RuleReport(rule="a", kind="threshold", passed=True, reason="ok",
                       observed={"value": 0.91, "metric": "accuracy", "dataset": "holdout"},
                       threshold=0.9),
            RuleReport(rule="b", kind="significance", passed=False, reason="not significant",
                       observed={"candidate": 0.5, "production": 0.49}, p_value=0.2345678),
        ]
    )  # fmt: skip
    assert [r.name for r in rows] == ["b", "a"]
    assert rows[0].p_value == "0.2346"
    assert rows[1].observed == [("value", "0.91")]
    assert ("metric", "accuracy") in rows[1].detail
    assert views.fmt_signed(-0.015) == "\u22120.015"
    assert views.fmt_p(1e-9) == "< 0.0001"


def test_csrf_token_is_bound_to_its_session() -> None:
    token = sessions.csrf_token_for("session-a")
    assert sessions.csrf_matches("session-a", token)
    assert not sessions.csrf_matches("session-b", token)
    assert not sessions.csrf_matches("session-a", None)
