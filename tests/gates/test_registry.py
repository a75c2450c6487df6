"""The rule-kind table: one entry per kind drives the policy schema, the dispatch and the
policy checks; each configuration reads its facts and calls its pure rule."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Literal

import pytest
from pydantic import TypeAdapter, ValidationError

from app.gates import registry
from app.gates.facts import ArtifactFacts
from app.gates.result import RuleResult
from app.gates.rules.base import RuleConfig
from app.promotion.schemas import GatePolicyDocument
from tests.gates.facts import Check, Facts, Version

RULE = TypeAdapter(registry.Rule)


def test_every_kind_is_in_the_table_once_and_the_schema_follows_it() -> None:
    kinds = [registry.kind_of(config) for config in registry.RULES]
    assert kinds == [
        "threshold",
        "no_regression",
        "significance",
        "fairness",
        "lineage_complete",
        "schema_compatible",
        "artifact_intact",
        "reproducible",
        "data_contract",
        "shadow_agreement",
    ]
    assert set(registry.BY_KIND) == set(kinds)
    schema = GatePolicyDocument.model_json_schema()
    mapping = schema["$defs"]["StagePolicy"]["properties"]["rules"]["items"]["discriminator"]
    assert set(mapping["mapping"]) == set(kinds)


def test_policy_json_parses_into_the_kind_s_configuration() -> None:
    parsed = RULE.validate_python(
        {"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.9}
    )
    assert type(parsed) is registry.BY_KIND["threshold"]
    assert parsed.default_name() == "threshold:accuracy"
    assert RULE.validate_python({"kind": "schema_compatible"}).default_name() == (
        "schema_compatible"
    )
    with pytest.raises(ValidationError):
        RULE.validate_python({"kind": "no_such_kind"})
    with pytest.raises(ValidationError):
        RULE.validate_python({"kind": "threshold", "metric": "accuracy", "dataset": "h"})


def test_a_new_kind_needs_only_its_configuration() -> None:
    """What the registry asks of a kind: a RuleConfig with a kind literal and evaluate()."""

    class AlwaysRule(RuleConfig):
        kind: Literal["always"]
        verdict: bool = True

        def evaluate(self, name: str, facts: Any) -> RuleResult:
            return RuleResult(name, "always", self.verdict, "as configured", {})

    assert registry.kind_of(AlwaysRule) == "always"
    rule = AlwaysRule(kind="always", verdict=False)
    result = rule.evaluate(rule.name or rule.default_name(), Facts(Version()))
    assert (result.rule, result.passed) == ("always", False)


def test_dispatch_reads_the_facts_each_kind_needs() -> None:
    candidate = Version(lineage={"code_commit": "abc"}).with_metric("accuracy", 0.91)
    production = Version(version=3).with_metric("accuracy", 0.9)
    facts = Facts(candidate, production, primary_metric="accuracy", primary_dataset="holdout")
    threshold = RULE.validate_python(
        {"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.95}
    )
    result = registry.evaluate(threshold, facts)
    assert (result.rule, result.passed, result.observed["value"]) == (
        "threshold:accuracy",
        False,
        0.91,
    )
    no_regression = RULE.validate_python({"kind": "no_regression", "name": "nr"})
    result = registry.evaluate(no_regression, facts)
    assert result.passed
    assert result.observed["metric"] == "accuracy"
    assert result.observed["dataset"] == "holdout"
    lineage = RULE.validate_python({"kind": "lineage_complete", "fields": ["code_commit"]})
    assert registry.evaluate(lineage, facts).passed


def test_artifact_rule_asks_the_store_only_for_an_uploaded_artifact() -> None:
    digest = "ab" * 32
    rule = RULE.validate_python({"kind": "artifact_intact", "deep": True})
    missing = Facts(Version())
    result = registry.evaluate(rule, missing)
    assert not result.passed
    assert missing.verified == []
    uploaded = Facts(
        Version(artifact=ArtifactFacts(uploaded=True, sha256=digest, expected_sha256=None)),
        stored=Check(present=True, intact=True, sha256_observed=digest, detail="re-hashed"),
    )
    result = registry.evaluate(rule, uploaded)
    assert result.passed
    assert uploaded.verified == [True]


def test_significance_reads_the_evidence_its_test_needs() -> None:
    rule = RULE.validate_python(
        {"kind": "significance", "test": "two_proportion", "dataset": "holdout"}
    )
    candidate = Version(evidence_by_kind={("holdout", "counts"): {"successes": 90, "total": 100}})
    # Counts follow from per-example correctness when only that was sent.
    production = Version(
        evidence_by_kind={("holdout", "correctness"): {"values": [True] * 70 + [False] * 30}}
    )
    result = registry.evaluate(rule, Facts(candidate, production))
    assert result.passed
    assert result.observed["production_successes"] == 70


@pytest.mark.parametrize(
    ("rule", "primary", "problems"),
    [
        ({"kind": "threshold", "metric": "weird", "dataset": "d", "value": 1}, None, ["metric"]),
        ({"kind": "threshold", "metric": "accuracy", "dataset": "d", "value": 1}, None, []),
        ({"kind": "no_regression"}, None, ["metric"]),
        ({"kind": "no_regression"}, ("accuracy", None), ["dataset"]),
        ({"kind": "no_regression"}, ("weird", "d"), ["metric"]),
        ({"kind": "no_regression", "direction": "lower"}, ("weird", "d"), []),
        ({"kind": "fairness", "metric": "weird", "dataset": "d", "floor": 1}, None, ["metric"]),
        ({"kind": "lineage_complete"}, None, []),
    ],
)
def test_policy_problems_come_from_each_kind(
    rule: dict[str, Any], primary: tuple[str, str | None] | None, problems: list[str]
) -> None:
    metric, dataset = primary or (None, None)
    facts = Facts(Version(), primary_metric=metric, primary_dataset=dataset)
    found = registry.policy_problems(RULE.validate_python(rule), facts)
    assert [p.field for p in found] == problems


def test_the_gates_package_imports_no_database_storage_or_http_code() -> None:
    code = (
        "import sys, app.gates, app.gates.registry\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'fastapi', 'starlette', 'httpx', 'boto3', 'botocore')"
        " or m.startswith(('app.db', 'app.api', 'app.storage', 'app.registry', 'app.promotion')))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""
