"""Request and response bodies of observations and labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, JsonValue, model_validator

from app.registry.schemas import Strict

MAX_BATCH = 10_000

RequestKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="The request's key (printable ASCII, no spaces): the key the router "
        "hashed, and the key labels are joined by.",
    ),
]
ClassName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00]+$")]
Role = Literal["primary", "shadow"]


def _exactly_one_of(*fields: tuple[str, str]) -> list[JsonValue]:
    """JSON Schema for "exactly one of these fields is given and not null"."""
    return [
        {"required": [name], "properties": {name: {"type": json_type}}}
        for name, json_type in fields
    ]


class Prediction(Strict):
    """Exactly one of: a class, a score in [0, 1] (binary classifiers) or a value."""

    model_config = ConfigDict(json_schema_extra={"oneOf": _exactly_one_of(
        ("class", "string"), ("score", "number"), ("value", "number")
    )})  # fmt: skip

    class_: ClassName | None = Field(default=None, alias="class")
    score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    value: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _exactly_one(self) -> Prediction:
        given = [v for v in (self.class_, self.score, self.value) if v is not None]
        if len(given) != 1:
            raise ValueError("a prediction has exactly one of 'class', 'score' or 'value'")
        return self

    @property
    def kind(self) -> str:
        if self.class_ is not None:
            return "class"
        return "score" if self.score is not None else "value"


class ObservationIn(Strict):
    """One request as serving saw it, for one version (the one that answered, or a
    shadow that scored the same request)."""

    request_key: RequestKey
    version: int = Field(ge=1, le=2_000_000_000)
    role: Role = "primary"
    latency_ms: float | None = Field(default=None, ge=0, le=3_600_000, allow_inf_nan=False)
    error: bool = False
    prediction: Prediction | None = None
    time: AwareDatetime = Field(description="When the request was served (RFC 3339, with offset).")


class ObservationBatch(Strict):
    observations: list[ObservationIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResult(Strict):
    accepted: int
    windows: int = Field(description="Aggregate windows the batch was folded into.")


class LabelIn(Strict):
    """Ground truth for one request key: a class or a value."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": _exactly_one_of(("class", "string"), ("value", "number"))}
    )

    request_key: RequestKey
    class_: ClassName | None = Field(default=None, alias="class")
    value: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _exactly_one(self) -> LabelIn:
        if (self.class_ is None) == (self.value is None):
            raise ValueError("a label has exactly one of 'class' or 'value'")
        return self


class LabelBatch(Strict):
    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_BATCH)


class LabelResult(Strict):
    labelled: int = Field(description="Predictions that received their label now.")
    already_labelled: int = Field(description="Keys whose label had arrived before (ignored).")


class ArmSummary(Strict):
    """What one version was seen doing in one role over the asked time range."""

    version: int
    role: Role
    requests: int
    errors: int
    error_rate: float | None
    latency_ms_mean: float | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    latency_sample_size: int
    labelled: int
    accuracy: float | None
    mean_absolute_error: float | None
    predictions: dict[str, int]
    first_window: datetime | None
    last_window: datetime | None


class ObservationSummary(Strict):
    model: str
    since: datetime
    until: datetime
    window_seconds: int
    arms: list[ArmSummary]


class PairsRead(Strict):
    """Shadow and primary predictions of the same requests, paired by request key."""

    pairs: int = Field(description="Requests with both a primary and a shadow prediction.")
    class_pairs: int = Field(description="Pairs of class predictions (or of scores).")
    agreeing: int = Field(description="Class pairs with the same class (scores: same side of 0.5).")
    agreement: float | None
    value_pairs: int = Field(description="Pairs of values (or of scores).")
    mean_absolute_difference: float | None
    primary_versions: dict[str, int] = Field(description="Pairs by the version that answered.")


class RateComparison(Strict):
    rate_a: float | None
    rate_b: float | None
    difference: float | None = Field(description="b - a.")
    z: float | None
    p_value: float | None = Field(description="Two-sided, fixed-sample.")


class LatencyComparison(Strict):
    median_a: float | None
    median_b: float | None
    samples: list[int]
    shift: float | None = Field(description="Hodges-Lehmann relative shift of b over a.")
    p_value: float | None = Field(description="Two-sided Mann-Whitney, fixed-sample.")


class DistributionComparison(Strict):
    samples: list[int]
    jensen_shannon: float | None = Field(description="Distance in [0, 1] (base 2).")
    chi_square: float | None
    p_value: float | None = Field(description="Chi-square test of homogeneity.")


class ShadowReport(Strict):
    """A shadow version against the primary that answered the same requests (a: the
    primary, b: the shadow)."""

    model: str
    version: int = Field(description="The shadow version.")
    primary_version: int | None = Field(
        description="The version that answered (most pairs; else production)."
    )
    since: datetime
    until: datetime
    pairs: PairsRead
    shadow: ArmSummary | None
    primary: ArmSummary | None
    windows: int = Field(description="Windows in which both arms were seen (latency, errors).")
    error_rate: RateComparison
    latency: LatencyComparison
    predictions: DistributionComparison


class ABMetric(Strict):
    metric: Literal["error_rate", "accuracy", "latency"]
    a: float | None
    b: float | None
    effect: float | None
    effect_name: str
    confidence_interval: list[float] | None = Field(
        description="Always-valid (confidence sequence) at 1 - alpha."
    )
    fixed_confidence_interval: list[float] | None = Field(
        description="Fixed-sample Wald interval at 1 - alpha (one planned look)."
    )
    p_value: float | None = Field(description="Always-valid two-sided p-value.")
    fixed_p_value: float | None = Field(description="Fixed-sample two-sided p-value.")
    significant: bool
    better: Literal["a", "b"] | None
    samples: list[int]
    reason: str
    shift: float | None = Field(default=None, description="Latency: Hodges-Lehmann shift.")


class ABReport(Strict):
    """Two versions over the same time (role primary); nothing is promoted."""

    model: str
    a: int
    b: int
    since: datetime
    until: datetime
    alpha: float
    min_sample: int
    arms: list[ArmSummary]
    metrics: list[ABMetric]
