"""Data-check payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.drift.schemas import ProfileData
from app.registry.schemas import Label


class DataCheckCreate(ProfileData):
    """A dataset (raw ``sample`` or per-column ``features`` profiles) to check."""

    dataset: Label = Field(description="The dataset's name; gates read the latest check of it.")
    purpose: Literal["training", "evaluation", "production"] = "evaluation"
    max_null_rate: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Largest null rate of a nullable column."
    )
    min_row_ratio: float = Field(default=0.5, ge=0.0, description="Rows >= this x reference.")
    max_row_ratio: float = Field(default=2.0, ge=0.0, description="Rows <= this x reference.")

    @model_validator(mode="after")
    def _range(self) -> DataCheckCreate:
        if self.min_row_ratio > self.max_row_ratio:
            raise ValueError("min_row_ratio is above max_row_ratio")
        return self


class DataCheckRow(BaseModel):
    check: Literal["required", "type", "nulls", "categories", "rows"]
    column: str | None
    passed: bool | None = Field(description="null: not checked (the reason says why).")
    reason: str
    observed: dict[str, Any]


class DataCheckRead(BaseModel):
    id: int
    model: str
    version: int
    dataset: str
    purpose: str
    passed: bool = Field(description="No check failed.")
    failed: list[str] = Field(description="The failed checks, as check:column.")
    rows: float
    checks: list[DataCheckRow]
    created_by: str
    created_at: datetime
