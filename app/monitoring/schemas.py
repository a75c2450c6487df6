"""What the monitoring endpoint shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.promotion.schemas import MonitoringPolicy


class Degradation(BaseModel):
    version: int
    baseline_version: int | None
    degraded_at: datetime
    reason: str | None
    action: str | None = Field(description="alert, rollback or rollback_failed.")
    action_detail: str | None


class MonitoringRead(BaseModel):
    model: str
    production_version: int | None
    period_started_at: datetime | None = Field(description="When it became production.")
    baseline_version: int | None = Field(description="The version it is compared with.")
    baseline_since: datetime | None
    baseline_until: datetime | None
    status: str = Field(
        description="no_production, pending (not checked yet), watching, degraded, "
        "no_baseline (entered by a rollback, or no previous version) or disabled."
    )
    looks: int = Field(description="Checks judged in this production period.")
    last_checked_at: datetime | None
    degraded_at: datetime | None
    reason: str | None
    action: str | None = Field(description="alert, rollback or rollback_failed.")
    action_detail: str | None
    last_look: dict[str, Any] | None = Field(
        description="The latest check: its score, status (pass, marginal, fail or nodata), "
        "failed_in_a_row and every metric's result."
    )
    failed_in_a_row: int = Field(
        default=0,
        description="Failed checks in a row so far (production.degraded at the policy's "
        "failure_limit).",
    )
    last_degradation: Degradation | None = Field(
        default=None, description="The newest degradation of any production period."
    )
    policy: MonitoringPolicy
