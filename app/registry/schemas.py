"""Registry payloads: what CI jobs send and what readers get back."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    model_validator,
)

from app.registry.models import ArtifactStatus, Stage
from app.schemas import Label as Label
from app.schemas import MetricName as MetricName
from app.schemas import ModelName as ModelName
from app.schemas import Page as Page
from app.schemas import Strict as Strict

ShortText = Annotated[str, Field(max_length=512, pattern=r"^[^\x00-\x1f\x7f]*$")]
# registered_models.owner is VARCHAR(256): a longer owner would be refused by PostgreSQL.
Owner = Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
TagKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]
Tags = Annotated[
    dict[TagKey, Annotated[str, Field(max_length=1024)]],
    Field(max_length=100, description="String labels, at most 100."),
]


# Models -----------------------------------------------------------------------


class ModelCreate(Strict):
    name: ModelName
    description: Annotated[str, Field(max_length=10_000)] = ""
    owner: Owner | None = None
    tags: Tags = Field(default_factory=dict)
    primary_metric: MetricName | None = Field(
        default=None, description="The metric the default production policy compares."
    )
    primary_dataset: Label | None = Field(
        default=None, description="The evaluation dataset the primary metric is compared on."
    )


class ModelUpdate(Strict):
    description: Annotated[str, Field(max_length=10_000)] | None = None
    owner: Owner | None = None
    tags: Tags | None = None
    primary_metric: MetricName | None = None
    primary_dataset: Label | None = None


class ModelRead(BaseModel):
    name: str
    description: str
    owner: str | None
    tags: dict[str, str]
    primary_metric: str | None
    primary_dataset: str | None
    latest_version: int
    production_version: int | None = None
    aliases: dict[str, int] = Field(
        default_factory=dict, description="The model's aliases and the version each points at."
    )
    frozen: bool = False
    frozen_by: str | None = None
    frozen_reason: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime


# Versions ---------------------------------------------------------------------


def _finite_json(value: JsonValue) -> JsonValue:
    """Refuse NaN and Infinity anywhere inside: Python's JSON parser accepts them, but
    they have no JSON form, so the value could be neither stored nor hashed."""
    pending: list[JsonValue] = [value]
    while pending:  # a loop, not recursion: nesting depth is the client's choice
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not JSON numbers")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return value


FiniteJson = Annotated[JsonValue, AfterValidator(_finite_json)]


class Lineage(Strict):
    """Where a model came from: ``M = Train(D, phi, lambda, C, E, s)``."""

    code_commit: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="VCS commit of the training code (C)."
    )
    code_repository: ShortText | None = None
    code_dirty: bool | None = Field(
        default=None, description="Whether the working tree had uncommitted changes."
    )
    data_version: ShortText | None = Field(default=None, description="Dataset version (D).")
    feature_pipeline_version: ShortText | None = Field(
        default=None, description="Feature logic version (phi)."
    )
    environment: ShortText | None = Field(
        default=None, description="Environment or container image digest (E)."
    )
    hyperparameters: dict[str, FiniteJson] | None = Field(
        default=None,
        description="Hyperparameters (lambda); `{}` states that there are none, which "
        "lineage_complete counts as present.",
    )
    seed: int | None = Field(default=None, description="Random seed (s).")
    training_run_id: ShortText | None = None
    ci_run_id: ShortText | None = None
    ci_run_url: Annotated[str, Field(max_length=2048)] | None = None
    extra: dict[str, FiniteJson] = Field(default_factory=dict)


ColumnType = Literal[
    "integer", "float", "number", "string", "boolean", "datetime", "date", "categorical",
    "bytes", "tensor", "object",
]  # fmt: skip


class Column(Strict):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    type: ColumnType
    nullable: bool = False
    required: bool = True
    categories: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None, max_length=10_000, description="Allowed values of a categorical column."
    )
    shape: list[int] | None = None


class Signature(Strict):
    inputs: list[Column] = Field(default_factory=list, max_length=10_000)
    outputs: list[Column] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _unique_names(self) -> Signature:
        for side in ("inputs", "outputs"):
            names = [c.name for c in getattr(self, side)]
            if len(names) != len(set(names)):
                raise ValueError(f"column names in {side} must be unique")
        return self


class MetricIn(Strict):
    name: MetricName
    # Strict: a quoted "0.9" or a boolean is a client bug, not a number to coerce.
    value: float = Field(allow_inf_nan=False, strict=True)
    dataset: Label = Field(description="The evaluation dataset the value was measured on.")
    slice: Label | None = Field(default=None, description="Subgroup, for fairness gates.")
    sample_count: int | None = Field(default=None, ge=0, le=2**63 - 1)  # a BIGINT column


class MetricRead(BaseModel):
    name: str
    value: float | None
    undefined_reason: str | None = None
    dataset: str
    slice: str | None
    sample_count: int | None
    source: str


FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
MAX_EXAMPLES = 1_000_000


class ConfusionMatrixIn(Strict):
    """Counts of true class i predicted as class j; the service derives accuracy,
    precision, recall and F1 (macro and micro for more than two classes)."""

    dataset: Label
    slice: Label | None = None
    matrix: list[list[Annotated[StrictInt, Field(ge=0)]]] = Field(
        min_length=2,
        max_length=1000,
        description="Square (one row and one column per class), not all zero.",
        # what the document can state of that: some row holds a count above zero
        json_schema_extra={"contains": {"contains": {"minimum": 1}}},
    )
    labels: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=256)]],
            Field(max_length=1000, json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = Field(default=None, description="The class names, distinct, one per row.")
    positive_label: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Binary only: the positive class (default: the second)."
    )


class RegressionIn(Strict):
    """Paired targets and predictions; the service derives MAE, MSE and RMSE."""

    dataset: Label
    slice: Label | None = None
    targets: list[FiniteFloat] = Field(min_length=1, max_length=MAX_EXAMPLES)
    predictions: list[FiniteFloat] = Field(min_length=1, max_length=MAX_EXAMPLES)


class CorrectnessEvidence(Strict):
    """Per-example correctness, in the same example order for every version."""

    kind: Literal["correctness"]
    dataset: Label
    values: list[StrictBool] = Field(min_length=1, max_length=MAX_EXAMPLES)


class CountsEvidence(Strict):
    kind: Literal["counts"]
    dataset: Label
    successes: Annotated[StrictInt, Field(ge=0)]
    total: Annotated[StrictInt, Field(ge=1)]

    @model_validator(mode="after")
    def _bounded(self) -> CountsEvidence:
        if self.successes > self.total:
            raise ValueError("successes must not exceed total")
        return self


class LossesEvidence(Strict):
    """Per-example losses (lower is better), in the same example order for every version."""

    kind: Literal["losses"]
    dataset: Label
    values: list[FiniteFloat] = Field(min_length=1, max_length=MAX_EXAMPLES)


EvidenceIn = Annotated[
    CorrectnessEvidence | CountsEvidence | LossesEvidence, Field(discriminator="kind")
]


def _no_discriminator(schema: dict[str, Any]) -> None:
    """The evidence items' ``oneOf`` without OpenAPI's ``discriminator`` hint: every branch
    pins ``kind`` with a ``const``, so the ``oneOf`` alone says the same thing, and
    schemathesis's negative generator gave up on the version-creation body with the hint
    ("Cannot generate an array with 1 demanded elements": it pins the property again in an
    ``allOf`` per branch, and the negation of that it cannot draw from)."""
    items = schema.get("items")
    if isinstance(items, dict):
        items.pop("discriminator", None)


class EvaluationIn(Strict):
    """Everything a CI job can send about how a version scored."""

    metrics: list[MetricIn] = Field(default_factory=list, max_length=10_000)
    confusion_matrices: list[ConfusionMatrixIn] = Field(default_factory=list, max_length=100)
    regression: list[RegressionIn] = Field(default_factory=list, max_length=100)
    evidence: list[EvidenceIn] = Field(
        default_factory=list, max_length=100, json_schema_extra=_no_discriminator
    )


class EvidenceRead(BaseModel):
    dataset: str
    kind: str
    size: int
    digest: str


class ArtifactExpectation(Strict):
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    media_type: Annotated[str, Field(max_length=256)] | None = None


class VersionCreate(EvaluationIn):
    description: Annotated[str, Field(max_length=10_000)] = ""
    lineage: Lineage = Field(default_factory=Lineage)
    signature: Signature | None = None
    tags: Tags = Field(default_factory=dict)
    artifact: ArtifactExpectation | None = Field(
        default=None,
        description="The artifact to expect; an upload with another sha256 is refused.",
    )


class ArtifactRead(BaseModel):
    status: ArtifactStatus
    sha256: str | None
    size: int | None
    media_type: str | None
    uploaded_at: datetime | None
    expected_sha256: str | None


class VersionRead(BaseModel):
    model: str
    version: int
    stage: Stage
    description: str
    lineage: dict[str, Any]
    lineage_fingerprint: str = Field(
        description="sha256 of the training specification in the lineage (code commit, data "
        "version, feature pipeline version, environment, hyperparameters, seed; absent fields "
        "as null): versions with equal fingerprints claim the same training run. Find them "
        "with GET /models/{model}/versions?fingerprint=."
    )
    signature: dict[str, Any] | None
    tags: dict[str, str]
    metrics: list[MetricRead]
    evidence: list[EvidenceRead] = Field(default_factory=list)
    artifact: ArtifactRead
    rolled_back: bool
    archived_reason: str | None = Field(
        default=None, description="Why the version was archived (replaced, rolled back, retired)."
    )
    created_by: str
    created_at: datetime
    updated_at: datetime
    stage_changed_at: datetime
    aliases: list[str] = Field(
        default_factory=list, description="Aliases pointing at this version, by name."
    )


class MetricsAdd(EvaluationIn):
    """Metrics, confusion matrices, regression pairs and evidence to add to a version."""


class StageRead(BaseModel):
    model: str
    stage: Stage
    items: list[VersionRead]
    next_cursor: str | None = None
