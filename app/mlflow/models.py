"""What MLflow knows about a version that Modelgate's own tables do not hold."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class Registration(StrEnum):
    PENDING = "PENDING_REGISTRATION"
    READY = "READY"
    FAILED = "FAILED_REGISTRATION"


class MlflowVersion(Base):
    """The MLflow side of a Modelgate version registered through MLflow (or imported).

    ``files`` lists the model directory as stored: each file's path, sha256 and size;
    the version's own artifact is the same list as JSON (the manifest), so the artifact
    gate checks it and every file is a content-addressed object of the store."""

    __tablename__ = "mlflow_versions"

    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64))
    run_link: Mapped[str | None] = mapped_column(Text)
    logged_model_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=Registration.PENDING.value)
    status_message: Mapped[str | None] = mapped_column(Text)
    files: Mapped[list[Any] | None] = mapped_column(default=None)
    # "<tracking uri>#<model>/<version>" for imported versions: what makes imports idempotent.
    origin: Mapped[str | None] = mapped_column(String(1024), unique=True)
