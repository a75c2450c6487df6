"""Payloads of rollouts (ROLLOUT_API.md is the contract these follow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas import Strict

Strategy = Literal["canary", "blue_green", "shadow", "ab"]
State = Literal["running", "paused", "completed", "aborted"]


class Hold(Strict):
    """What a step waits for before it may advance (at least one of them)."""

    # "At least one" stated in the document (decision 0025).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["duration_seconds"],
                 "properties": {"duration_seconds": {"type": "number"}}},
                {"required": ["min_observations"],
                 "properties": {"min_observations": {"type": "integer"}}},
                {"required": ["approval"], "properties": {"approval": {"const": True}}},
            ]
        },
    )  # fmt: skip

    duration_seconds: float | None = Field(default=None, ge=0, le=30 * 86_400)
    min_observations: int | None = Field(default=None, ge=1, le=10**12)
    approval: bool = False

    @model_validator(mode="after")
    def _some_hold(self) -> Hold:
        if self.duration_seconds is None and self.min_observations is None and not self.approval:
            raise ValueError("a step needs a hold: duration_seconds, min_observations or approval")
        return self


class StepIn(Strict):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(
        gt=0, le=100, description="Percent of requests (shadow: of requests also scored)."
    )
    hold: Hold


class MetricIn(Strict):
    # Stated in the document (decision 0026): a prediction_distribution metric compares a
    # Jensen-Shannon distance, which is at most 1, so its tolerance is too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"kind": {"enum": ["error_rate", "accuracy", "latency"]}}},
                {"required": ["kind"], "properties": {"tolerance": {"maximum": 1}}},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["error_rate", "accuracy", "latency", "prediction_distribution"]
    tolerance: float = Field(default=0.0, ge=0, le=1_000_000)
    weight: float = Field(default=1.0, gt=0, le=1000)
    min_sample: int = Field(default=200, ge=1, le=10**9)
    critical: bool = False
    tau: float | None = Field(default=None, gt=0, le=1000)


def default_metrics() -> list[MetricIn]:
    return [
        MetricIn(name="errors", kind="error_rate", tolerance=0.0, weight=1, critical=True),
        MetricIn(name="latency", kind="latency", tolerance=0.1, weight=1),
    ]


class AnalysisIn(Strict):
    model_config = ConfigDict(extra="forbid")

    metrics: list[MetricIn] = Field(default_factory=default_metrics, min_length=1, max_length=20)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    pass_score: float = Field(default=95.0, ge=0, le=100)
    marginal_score: float = Field(default=75.0, ge=0, le=100)
    failure_limit: int = Field(default=1, ge=1, le=1000)
    interval_seconds: float = Field(
        default=30.0, ge=0.1, le=86_400, description="How often the server looks (seconds)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisIn:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique")
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not exceed pass_score")
        for m in self.metrics:
            if m.kind == "prediction_distribution" and m.tolerance > 1:
                raise ValueError(f"metric {m.name!r}: a Jensen-Shannon distance is at most 1")
        return self


class RolloutCreate(Strict):
    # What each strategy does with its steps, stated in the document (decision 0025): one
    # step of weight 100 for blue_green, one of less than 100 for ab.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"strategy": {"enum": ["canary", "shadow"]}}},
                {"required": ["strategy"],
                 "properties": {"strategy": {"const": "blue_green"}, "steps": {
                     "maxItems": 1, "items": {"properties": {"weight": {"const": 100}}}}}},
                {"required": ["strategy"],
                 "properties": {"strategy": {"const": "ab"}, "steps": {
                     "maxItems": 1,
                     "items": {"properties": {"weight": {"exclusiveMaximum": 100}}}}}},
            ]
        },
    )  # fmt: skip

    version: int = Field(ge=1, le=2_000_000_000)
    strategy: Strategy = "canary"
    steps: list[StepIn] = Field(min_length=1, max_length=50)
    analysis: AnalysisIn = Field(default_factory=AnalysisIn)
    promote_on_complete: bool | None = Field(
        default=None,
        description="Whether completion makes the version production (default: true for "
        "canary and blue_green, false for shadow and ab).",
    )
    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _steps(self) -> RolloutCreate:
        weights = [s.weight for s in self.steps]
        for i in range(1, len(weights)):
            if weights[i] <= weights[i - 1]:
                raise ValueError(
                    f"step weights must increase strictly: step {i} has {weights[i]} after "
                    f"{weights[i - 1]}"
                )
        if self.strategy in ("blue_green", "ab") and len(self.steps) != 1:
            raise ValueError(f"a {self.strategy} rollout has exactly one step")
        if self.strategy == "blue_green" and self.steps[0].weight != 100:
            raise ValueError("a blue_green rollout's step has weight 100 (the whole share)")
        if self.strategy == "ab" and self.steps[0].weight >= 100:
            raise ValueError("an ab rollout's split leaves the incumbent some traffic (< 100)")
        return self


class ActionBody(Strict):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class AdvanceBody(Strict):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    step: int | None = Field(
        default=None, ge=0, le=1000,
        description="The step the caller advances from: when the rollout has moved on "
        "meanwhile (another operator, the driver), the answer is 409 and nothing moves.",
    )  # fmt: skip


class AbortBody(Strict):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class ApproveBody(Strict):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=2000)


class StepRead(BaseModel):
    weight: float
    hold: dict[str, Any]
    started_at: datetime | None = None
    approved_by: str | None = None


class LookRead(BaseModel):
    number: int
    at: datetime
    step: int
    score: float | None
    status: Literal["pass", "marginal", "fail", "nodata"]
    action: str = Field(description="What the look decided: advance, hold or abort.")
    reason: str
    results: list[dict[str, Any]]


class DecisionRead(BaseModel):
    at: datetime
    action: Literal["started", "advanced", "paused", "resumed", "aborted", "completed", "approved"]
    step: int
    actor: str
    automatic: bool
    reason: str | None


class RolloutRead(BaseModel):
    id: int
    model: str
    version: int
    incumbent_version: int | None
    strategy: Strategy
    state: State
    step: int = Field(description="Index into steps of the current step.")
    switched: bool = Field(
        description="blue_green: whether the whole share has moved (false while the green "
        "version warms up as a shadow)."
    )
    steps: list[StepRead]
    weights: dict[str, float] = Field(
        description="Version -> percent of requests. While running or paused: what serves "
        "now (incumbent and candidate). Once ended: what the rollout left serving, the "
        "version alone at 100 when it completed into production, else the incumbent alone "
        "at 100 (an abort, or a shadow/ab rollout completed without promotion)."
    )
    shadow_share: float
    promote_on_complete: bool
    analysis: dict[str, Any]
    looks: list[LookRead] = Field(description="The last 50 looks, newest last.")
    look_count: int
    next_look_at: datetime | None
    decisions: list[DecisionRead]
    reason: str | None = Field(description="Why it ended (completed or aborted).")
    created_by: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    serving_revision: int
