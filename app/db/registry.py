"""Imports every table module so that ``Base.metadata`` is complete (alembic, tests)."""

from app.audit import models as audit_models
from app.auth import models as auth_models
from app.console import models as console_models
from app.datachecks import models as datachecks_models
from app.db.base import Base
from app.drift import models as drift_models
from app.events import models as events_models
from app.idempotency import models as idempotency_models
from app.mlflow import models as mlflow_models
from app.observations import models as observations_models
from app.promotion import models as promotion_models
from app.registry import models as registry_models
from app.reproductions import models as reproductions_models
from app.rollouts import models as rollouts_models
from app.serving import models as serving_models

__all__ = [
    "Base",
    "audit_models",
    "auth_models",
    "console_models",
    "datachecks_models",
    "drift_models",
    "events_models",
    "idempotency_models",
    "mlflow_models",
    "observations_models",
    "promotion_models",
    "registry_models",
    "reproductions_models",
    "rollouts_models",
    "serving_models",
]
