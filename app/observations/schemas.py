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
