"""Gate reports: verdict, failures, JSON form and a content digest."""

import hashlib
import json

import pytest

from app.gates import GateReport, RuleResult


def result(rule: str, passed: bool, observed: dict[str, object] | None = None) -> RuleResult:
    return RuleResult(rule, "threshold", passed, f"{rule} reason", observed or {}, threshold=0.9)


def test_empty_report_passes() -> None:
    report = GateReport(())
    assert report.passed
    assert report.failed == ()
    assert report.to_dict() == {"passed": True, "failed": [], "results": []}


def test_report_passes_only_when_every_rule_passes() -> None:
    ok, bad = result("a", True), result("b", False)
    assert GateReport((ok,)).passed
    report = GateReport((ok, bad, result("c", False)))
    assert not report.passed
    assert [r.rule for r in report.failed] == ["b", "c"]
    assert report.to_dict()["failed"] == ["b", "c"]


def test_report_to_dict_round_trips_through_json() -> None:
    report = GateReport.of([result("a", True, {"value": 0.95, "dataset": "test"})])
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["results"][0]["observed"] == {"value": 0.95, "dataset": "test"}


def test_digest_is_sha256_of_canonical_json() -> None:
    report = GateReport((result("a", True, {"b": 1, "a": "é"}),))
    canonical = report.canonical_json()
    assert canonical == json.dumps(
        report.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert "é" in canonical
    assert report.digest() == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_digest_is_stable_across_dict_ordering() -> None:
    first = GateReport((result("a", True, {"x": 1, "y": {"p": 0.5, "q": [1, 2]}}),))
    second = GateReport((result("a", True, {"y": {"q": [1, 2], "p": 0.5}, "x": 1}),))
    assert first.digest() == second.digest()
    assert first == second


def test_digest_changes_with_content_and_with_rule_order() -> None:
    a, b = result("a", True), result("b", True)
    assert GateReport((a, b)).digest() != GateReport((a, result("b", False))).digest()
    assert GateReport((a, b)).digest() != GateReport((b, a)).digest()


def test_report_accepts_a_list_but_stores_a_tuple() -> None:
    report = GateReport([result("a", True)])  # type: ignore[arg-type]
    assert isinstance(report.results, tuple)
    with pytest.raises(TypeError):
        GateReport(("not a result",))  # type: ignore[arg-type]
