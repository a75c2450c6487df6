"""Reproduction payloads: what a re-run reports, and what readers get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.registry.schemas import FiniteFloat, Label, Lineage, MetricName, Strict

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex sha256.")]


class ReproducedMetric(Strict):
    name: MetricName
    dataset: Label
    slice: Label | None = Field(default=None, description="A slice; default: the whole dataset.")
    value: FiniteFloat


class ReproductionCreate(Strict):
    """A re-run of the version's training specification: what it produced."""

    # The document states the first rule below: an artifact_sha256, metrics, or both.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["artifact_sha256"],
                    "properties": {"artifact_sha256": {"type": "string"}},
                },
                {"required": ["metrics"], "properties": {"metrics": {"minItems": 1}}},
            ]
        }
    )

    artifact_sha256: Sha256Hex | None = Field(
        default=None, description="sha256 of the artifact the re-run produced."
    )
    metrics: list[ReproducedMetric] = Field(default_factory=list, max_length=1000)
    lineage: Lineage | None = Field(
        default=None,
        description="The re-run's lineage, when stated: its fingerprint must equal the "
        "version's (a re-run of another specification is no reproduction).",
    )
    run_url: Annotated[str, Field(max_length=2048)] | None = None
    comment: Annotated[str, Field(max_length=4000)] | None = None

    @model_validator(mode="after")
    def _states_something(self) -> ReproductionCreate:
        if self.artifact_sha256 is None and not self.metrics:
            raise ValueError("a reproduction states an artifact_sha256, metrics, or both")
        seen: set[tuple[str, str, str]] = set()
        for m in self.metrics:
            key = (m.name, m.dataset, m.slice or "")
            if key in seen:
                raise ValueError(f"metric {m.name!r} on {m.dataset!r} is listed twice")
            seen.add(key)
        return self


class ReproductionRead(BaseModel):
    id: int
    model: str
    version: int
    artifact_sha256: str | None
    artifact_identical: bool | None = Field(
        description="Whether the digest equals the version's recorded one (null when "
        "either is unknown)."
    )
    metrics: list[ReproducedMetric]
    lineage_fingerprint: str | None = Field(
        description="The re-run's fingerprint, when it stated its lineage."
    )
    run_url: str | None
    comment: str | None
    created_by: str
    created_at: datetime
