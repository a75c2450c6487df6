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


def test_a_rollout_is_summarised_by_step_weights_holds_and_looks_newest_first() -> None:
    from datetime import UTC, datetime

    from app.rollouts.schemas import RolloutRead

    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    look = {"number": 1, "at": at, "step": 0, "score": 50.0, "status": "fail", "action": "hold",
            "reason": "look 1 failed", "results": [
                {"metric": "errors", "kind": "error_rate", "verdict": "fail", "p_value": 0.0012,
                 "effect": 0.01, "tolerance": 0.0, "canary": 0.02, "incumbent": 0.01,
                 "samples": [2000, 8000], "reason": "higher"}]}  # fmt: skip
    r = RolloutRead(
        id=3, model="m", version=2, incumbent_version=1, strategy="canary", state="running",
        step=1, switched=False,
        steps=[{"weight": 10, "hold": {"min_observations": 2000}},
               {"weight": 50, "hold": {"duration_seconds": 600, "approval": True}}],
        weights={"1": 50.0, "2": 50.0}, shadow_share=0.0, promote_on_complete=True,
        analysis={}, looks=[look, {**look, "number": 2, "status": "marginal"}], look_count=2,
        next_look_at=None, decisions=[], reason=None, created_by="a", created_at=at,
        updated_at=at, ended_at=None, serving_revision=3,
    )  # fmt: skip
    view = views.rollout_view(r)
    assert view.step_label == "step 2 of 2"
    assert [(s.number, s.state, s.hold) for s in view.steps] == [
        (1, "done", "2,000 observations"), (2, "current", "600 s + approval"),
    ]  # fmt: skip
    assert view.weights == [(1, 50.0), (2, 50.0)]
    rows = views.look_rows(r)
    assert [row.number for row in rows] == [2, 1]
    (errors,) = rows[0].metrics
    assert (errors.verdict, errors.p_value, errors.samples) == ("fail", "0.0012", "2,000 / 8,000")
