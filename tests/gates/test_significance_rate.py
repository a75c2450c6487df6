"""The significance gate's error rates through the promotion service's own wiring.

``tests/gates`` checks the statistics of the pure rule over thousands of trials. This
checks that :func:`app.promotion.evaluation.evaluate` feeds it the right evidence (the
candidate's as the candidate, production's as production, found by dataset and kind in
the database) so that the rates hold end to end: equal models pass at most
``alpha + 3 SE`` of the time, a candidate truly better by ``2 * delta`` passes in most
trials. Seeded, and through the service rather than HTTP to stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.auth.roles import SYSTEM
from app.gates.rules.significance import SignificanceRule
from app.promotion.evaluation import evaluate
from app.promotion.policy import PolicyInForce
from app.promotion.schemas import GatePolicyDocument, ProductionPolicy
from app.registry import service as registry
from app.registry.models import ModelVersion, Stage
from app.registry.schemas import CorrectnessEvidence, MetricsAdd, ModelCreate, VersionCreate

ALPHA = 0.05


@pytest.fixture
def session(client: TestClient) -> Iterator[Session]:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        yield session


def paired_correctness(
    rng: np.random.Generator, n: int, only_candidate: float, only_production: float
) -> tuple[list[bool], list[bool]]:
    """Both models on the same n examples: right for the candidate only, production only,
    both (p = 0.75) or neither; the true accuracy gain is the difference of the first two."""
    u = rng.random(n)
    b_end = only_candidate
    c_end = b_end + only_production
    both_end = c_end + 0.75
    candidate = (u < b_end) | ((u >= c_end) & (u < both_end))
    production = (u >= b_end) & (u < both_end)
    return candidate.tolist(), production.tolist()


def version(session: Session, arrays: list[list[bool]]) -> ModelVersion:
    """A version with correctness evidence on datasets d0, d1, ... (one per trial)."""
    evidence = [
        CorrectnessEvidence(kind="correctness", dataset=f"d{i}", values=values)
        for i, values in enumerate(arrays)
    ]
    _, created = registry.create_version(
        session, actor=SYSTEM, model_name="stats", data=VersionCreate(evidence=evidence[:100])
    )
    for start in range(100, len(evidence), 100):  # at most 100 per request
        more = MetricsAdd(evidence=evidence[start : start + 100])
        registry.add_metrics(
            session, actor=SYSTEM, model_name="stats", number=created.version, data=more
        )
    session.flush()  # the service's sessions do not autoflush; the gate reads the rows back
    return created


def pass_rate(
    session: Session,
    client: TestClient,
    *,
    trials: int,
    n: int,
    only_candidate: float,
    only_production: float,
    delta: float,
    seed: int,
) -> float:
    """Trials as datasets: one evaluation of a policy with one McNemar rule per dataset."""
    rng = np.random.default_rng(seed)
    pairs = [paired_correctness(rng, n, only_candidate, only_production) for _ in range(trials)]
    candidate = version(session, [c for c, _ in pairs])
    production = version(session, [p for _, p in pairs])
    rules = [
        SignificanceRule(
            kind="significance",
            name=f"d{i}",
            test="mcnemar",
            dataset=f"d{i}",
            alpha=ALPHA,
            delta=delta,
        )
        for i in range(trials)
    ]
    policy = PolicyInForce(
        GatePolicyDocument(production=ProductionPolicy(rules=rules)), 1, "test", None, None
    )
    result = evaluate(
        session,
        store=client.app.state.store,  # type: ignore[attr-defined]
        model=registry.get_model(session, "stats"),
        version=candidate,
        target=Stage.PRODUCTION,
        policy=policy,
        production=production,
    )
    rows = result.report.rules
    assert len(rows) == trials
    assert all(row.p_value is not None for row in rows), rows[0]
    return sum(row.passed for row in rows) / trials


def test_equal_models_pass_at_most_alpha_and_better_ones_mostly_pass(
    client: TestClient, session: Session
) -> None:
    registry.create_model(session, actor=SYSTEM, data=ModelCreate(name="stats"))
    trials = 200
    size = pass_rate(
        session,
        client,
        trials=trials,
        n=400,
        only_candidate=0.05,
        only_production=0.05,
        delta=0.0,
        seed=1,
    )
    assert size <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials), size
    # True gain 0.04 = 2 * delta, with n large enough for power near 0.9.
    power = pass_rate(
        session,
        client,
        trials=40,
        n=2000,
        only_candidate=0.07,
        only_production=0.03,
        delta=0.02,
        seed=2,
    )
    assert power >= 0.75, power
    # The same evidence with the roles swapped (a truly worse candidate) never passes.
    worse = pass_rate(
        session,
        client,
        trials=20,
        n=2000,
        only_candidate=0.03,
        only_production=0.07,
        delta=0.0,
        seed=3,
    )
    assert worse == 0.0, worse
    session.rollback()
