"""Drift payloads: reference profiles, production windows, drift reports and settings."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from app.registry.schemas import Strict
from app.rfc3339 import Rfc3339DateTime

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# Bounded so that sums over every bin and column stay finite (a row count above 10**15 is
# no real window; unbounded, 1e308 + 1e308 was an infinite row count and a 500).
MAX_COUNT = 10**15
Count = Annotated[float, Field(ge=0, le=MAX_COUNT, allow_inf_nan=False)]
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]
CategoryName = Annotated[str, Field(max_length=256)]
RawValue = Annotated[
    StrictBool | StrictInt | Annotated[float, Field(allow_inf_nan=False, strict=True)] | StrictStr
    | None,
    Field(union_mode="left_to_right"),
]  # fmt: skip
MAX_COLUMNS = 2_000
MAX_BINS = 1_000
MAX_CATEGORIES = 10_000
MAX_ROWS_HARD = 1_000_000
SampleColumn = Annotated[list[RawValue], Field(min_length=1, max_length=MAX_ROWS_HARD)]


class NumericProfileIn(Strict):
    """Quantile (or any) bins of a numeric feature. Only the inner edges bin values: the
    first and last bins are open-ended."""

    kind: Literal["numeric"]
    edges: list[FiniteFloat] = Field(min_length=2, max_length=MAX_BINS + 1)
    counts: list[Count] = Field(min_length=1, max_length=MAX_BINS)
    null_count: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 0
    sample: list[FiniteFloat] | None = Field(
        default=None,
        max_length=100_000,
        description="Raw values, for the Kolmogorov-Smirnov test (skipped without them).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> NumericProfileIn:
        if len(self.counts) != len(self.edges) - 1:
            raise ValueError("counts needs one value per bin: len(edges) - 1")
        if any(b < a for a, b in itertools.pairwise(self.edges)):
            raise ValueError("edges must not decrease")
        inner = self.edges[1:-1]
        if any(b <= a for a, b in itertools.pairwise(inner)):
            raise ValueError("inner edges must increase strictly")
        if sum(self.counts) <= 0:
            raise ValueError("counts must not all be zero")
        return self


class CategoricalProfileIn(Strict):
    """Counts (or frequencies) of each category of a categorical feature."""

    kind: Literal["categorical"]
    frequencies: dict[CategoryName, Count] = Field(min_length=1, max_length=MAX_CATEGORIES)
    null_count: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 0

    @model_validator(mode="after")
    def _some_mass(self) -> CategoricalProfileIn:
        if sum(self.frequencies.values()) <= 0:
            raise ValueError("frequencies must not all be zero")
        return self


FeatureProfileIn = Annotated[NumericProfileIn | CategoricalProfileIn, Field(discriminator="kind")]


class ProfileData(Strict):
    """Either ``features`` (and ``prediction``) as profiles, or ``sample`` (and
    ``predictions``) as raw columns that the service profiles itself."""

    # What JSON Schema can say of the rules below: exactly one form, with its own
    # prediction field, and a sample with rows. Columns of a sample may differ in length:
    # every computation is per column (drift per feature, data checks per column), so each
    # is profiled from its own values, and the row count is the longest column's, as for
    # ``features`` (whose profiles count their own values too).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["features"],
                    "properties": {
                        "features": {"type": "object"},
                        "sample": {"type": "null"},
                        "predictions": {"type": "null"},
                    },
                },
                {
                    "required": ["sample"],
                    "properties": {
                        "sample": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": {"type": "array", "minItems": 1},
                        },
                        "features": {"type": "null"},
                        "prediction": {"type": "null"},
                    },
                },
            ]
        }
    )

    features: dict[ColumnName, FeatureProfileIn] | None = Field(
        default=None, max_length=MAX_COLUMNS
    )
    prediction: FeatureProfileIn | None = None
    sample: dict[ColumnName, SampleColumn] | None = Field(
        default=None,
        max_length=MAX_COLUMNS,
        description="Column name to its values (numbers, strings, booleans or null). Each "
        "column is profiled from its own values; columns of different lengths are "
        "allowed, and the row count is the longest column's.",
    )
    predictions: SampleColumn | None = Field(
        default=None, description="The raw predictions, profiled like a column of the sample."
    )

    @model_validator(mode="after")
    def _one_form(self) -> ProfileData:
        if (self.features is None) == (self.sample is None):
            raise ValueError("send either features (profiles) or sample (raw columns)")
        if self.features is not None and self.predictions is not None:
            raise ValueError("with features, send the prediction profile as prediction")
        if self.sample is not None:
            if self.prediction is not None:
                raise ValueError("with sample, send the raw predictions as predictions")
            if not self.sample:
                raise ValueError("the sample has no rows")
        return self


class ReferenceProfileCreate(ProfileData):
    """The training-data profile of a version."""

    dataset: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="What data this profile describes (e.g. the training set)."
    )


class DriftReportCreate(ProfileData):
    """A window of production inputs (and predictions) to check for drift."""

    window_start: Rfc3339DateTime | None = None
    window_end: Rfc3339DateTime | None = None

    @model_validator(mode="after")
    def _window(self) -> DriftReportCreate:
        for name in ("window_start", "window_end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. a trailing Z)")
        if self.window_start and self.window_end and self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


# Reading -------------------------------------------------------------------------------


class NumericProfileRead(BaseModel):
    kind: Literal["numeric"]
    edges: list[float]
    counts: list[float]
    count: float = Field(description="Non-null values.")
    null_count: int
    mean: float | None = None
    std: float | None = None
    sample_size: int = Field(description="Raw values kept for the KS test.")
    sample: list[float] | None = Field(
        default=None, description="The kept values (with include_sample=true)."
    )


class CategoricalProfileRead(BaseModel):
    kind: Literal["categorical"]
    frequencies: dict[str, float]
    count: float
    null_count: int


FeatureProfileRead = Annotated[
    NumericProfileRead | CategoricalProfileRead, Field(discriminator="kind")
]


class ReferenceProfileRead(BaseModel):
    model: str
    version: int
    source: Literal["sample", "profile"]
    dataset: str | None
    rows: int | None
    features: dict[str, FeatureProfileRead]
    prediction: FeatureProfileRead | None
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Columns not profiled, and why (e.g. datetime)."
    )
    digest: str
    created_by: str
    created_at: datetime


class StatTestRead(BaseModel):
    statistic: float
    p_value: float
    dof: int | None = None
    significant: bool = Field(description="p_value < alpha.")


class FeatureDriftRead(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    rows: float = Field(description="Non-null window values compared.")
    reference_rows: float
    null_rate: float | None
    psi: float | None
    psi_critical: float | None = Field(
        description="PSI that sampling noise alone exceeds with probability alpha."
    )
    false_alarm_probability: float | None = Field(
        description="Chance that PSI exceeds tau without any drift, at this window size."
    )
    score: float | None = Field(description="psi * min(1, tau / psi_critical).")
    drifted: bool
    ks: StatTestRead | None = None
    chi_square: StatTestRead | None = None
    js_distance: float | None = None
    skipped: str | None = Field(default=None, description="Why nothing was computed.")
    notes: list[str] = Field(default_factory=list, description="Tests skipped, and why.")
    cells: list[str] | None = Field(
        default=None, description="Categories (categorical), in the order of the counts."
    )
    edges: list[float] | None = Field(default=None, description="Bin edges (numeric).")
    reference_counts: list[float] | None = None
    window_counts: list[float] | None = None


class SchemaIssue(BaseModel):
    kind: Literal[
        "missing_column",
        "new_column",
        "type_mismatch",
        "null_rate",
        "unexpected_nulls",
        "unseen_categories",
    ]
    column: str
    detail: str
    required: bool | None = None
    expected: str | None = None
    observed: str | None = None
    rate: float | None = None
    bound: float | None = None
    categories: list[str] | None = None


class SchemaDriftRead(BaseModel):
    ok: bool
    checked_against: Literal["signature", "reference_profile"]
    issues: list[SchemaIssue]


class DriftSettingsRead(BaseModel):
    """Thresholds of a model's drift checks (defaults until an admin sets them)."""

    model: str
    tau: float
    max_null_rate: float
    alpha: float
    is_default: bool
    updated_by: str | None = None
    updated_at: datetime | None = None


class DriftSettingsUpdate(Strict):
    tau: float = Field(
        default=0.2,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Drift when Delta, the largest feature score (PSI), exceeds tau.",
    )
    max_null_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="A column with more nulls than this in a window is a schema issue.",
    )
    alpha: float = Field(
        default=0.01, gt=0, lt=1, allow_inf_nan=False,
        description="Significance level of KS and chi-square, and of the PSI noise bound.",
    )  # fmt: skip


class DriftReportRead(BaseModel):
    id: int
    model: str
    version: int = Field(description="The production version checked.")
    window_start: datetime | None
    window_end: datetime | None
    rows: int | None = Field(description="Rows in the window (largest column count).")
    score: float = Field(description="Delta: the largest feature score.")
    tau: float
    drifted: bool = Field(
        description="score > tau (kind distribution), or the window breaks the schema "
        "(kind schema: a missing required column, a retyped column, unseen categories, "
        "nulls where none may be)."
    )
    kinds: list[Literal["distribution", "schema"]] = Field(
        default_factory=list, description="Why the report is drifted; empty when it is not."
    )
    top_feature: str | None
    settings: dict[str, float]
    features: list[FeatureDriftRead]
    prediction: FeatureDriftRead | None
    schema_drift: SchemaDriftRead
    created_by: str
    created_at: datetime
