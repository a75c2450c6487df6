"""Route of after-release monitoring: how production is watched, and what it found."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ModelPath, ModelReader, UowDep
from app.api.problems import responses
from app.monitoring import service
from app.monitoring.schemas import MonitoringRead

router = APIRouter(prefix="/models/{model}", tags=["monitoring"])


@router.get(
    "/monitoring", response_model=MonitoringRead, responses=responses(401, 403, 404, 422, 503)
)
def get_monitoring(model: ModelPath, uow: UowDep, principal: ModelReader) -> MonitoringRead:
    """Production against the previous version's baseline (its observations while it was
    production): the monitoring policy in force, the status of the current production
    period (watching, degraded, ...), the latest check's per-metric results, and the
    newest degradation with what was done (alert, rollback)."""
    return service.status(uow.session, model_name=model)
