"""Tables of the registry: registered models, versions and their metrics."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, BigIntPK, StrEnumText, utcnow


class Stage(StrEnum):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class ArtifactStatus(StrEnum):
    MISSING = "missing"
    VERIFIED = "verified"
    CORRUPT = "corrupt"
    """Reported, not stored: a verified artifact whose stored bytes were later found not to
    match (``artifact_corrupt_at`` is set; ``artifact_status`` stays ``verified``)."""


STAGE_CHECK = "stage IN ('candidate', 'staging', 'production', 'archived')"


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(String(256))
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    primary_metric: Mapped[str | None] = mapped_column(String(128))
    primary_dataset: Mapped[str | None] = mapped_column(String(256))
    # Per-model counter bumped with UPDATE ... RETURNING: the row lock it takes is what
    # serialises version numbering (and every other write) per model.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Freeze: no promotion to production while set (rollback still works).
    frozen_at: Mapped[datetime | None] = mapped_column()
    frozen_by: Mapped[str | None] = mapped_column(String(256))
    frozen_reason: Mapped[str | None] = mapped_column(Text)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint(STAGE_CHECK, name="stage"),
        CheckConstraint("artifact_status IN ('missing', 'verified')", name="artifact_status"),
        # At most one production version per model, whatever the application does.
        Index(
            "uq_model_versions_one_production",
            "model_id",
            unique=True,
            postgresql_where=text("stage = 'production'"),
            sqlite_where=text("stage = 'production'"),
        ),
        Index("ix_model_versions_model_id_stage_version", "model_id", "stage", "version"),
        Index("ix_model_versions_model_id_lineage_fingerprint", "model_id", "lineage_fingerprint"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="RESTRICT")
    )
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[Stage] = mapped_column(StrEnumText(Stage, 16), default=Stage.CANDIDATE)
    description: Mapped[str] = mapped_column(Text, default="")
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lineage_fingerprint: Mapped[str] = mapped_column(String(64))
    """sha256 of the training specification in ``lineage`` (app/registry/fingerprint.py)."""
    signature: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)

    artifact_status: Mapped[str] = mapped_column(String(16), default=ArtifactStatus.MISSING.value)
    artifact_key: Mapped[str | None] = mapped_column(String(512))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    artifact_size: Mapped[int | None] = mapped_column(BigInteger)
    artifact_etag: Mapped[str | None] = mapped_column(String(128))
    artifact_media_type: Mapped[str | None] = mapped_column(String(256))
    artifact_expected_sha256: Mapped[str | None] = mapped_column(String(64))
    artifact_uploaded_at: Mapped[datetime | None] = mapped_column()
    artifact_corrupt_at: Mapped[datetime | None] = mapped_column()
    """Set while the stored bytes are known not to match the recorded sha256."""
    artifact_checked_at: Mapped[datetime | None] = mapped_column()
    """When the stored content was last verified (download, rollback, gate, scrub)."""
    artifact_check: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    """That verification's result: method, digests, detail (storage.integrity.ArtifactCheck)."""

    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    rolled_back: Mapped[bool] = mapped_column(Boolean, default=False)
    archived_reason: Mapped[str | None] = mapped_column(Text)

    metrics: Mapped[list[Metric]] = relationship(
        lazy="raise", order_by="Metric.id", back_populates="model_version"
    )
    evidence: Mapped[list[EvaluationEvidence]] = relationship(
        lazy="raise", order_by="EvaluationEvidence.id"
    )


class Metric(Base):
    """One evaluation result. Immutable: the same key with another value is a conflict,
    except ``stage``, a copy of its version's stage kept equal on every stage change by
    the one function that changes stages (``app.promotion.transitions.move``)."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("version_id", "name", "dataset", "slice"),
        # Serves "order versions of a model by a metric on a dataset" without a sort.
        Index("ix_metrics_model_id_name_dataset_value", "model_id", "name", "dataset", "value"),
        # The same in one stage: "staging versions by accuracy" is a range of this index,
        # where the index above would be walked until enough staging versions turned up
        # (a rare stage: thousands of rows per page at a million versions).
        Index(
            "ix_metrics_model_id_name_dataset_stage_value",
            "model_id",
            "name",
            "dataset",
            "stage",
            "value",
            postgresql_where=text("slice = ''"),
            sqlite_where=text("slice = ''"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registered_models.id"))
    name: Mapped[str] = mapped_column(String(128))
    dataset: Mapped[str] = mapped_column(String(256))
    # '' rather than NULL for "whole dataset", so the unique key works on every backend.
    slice: Mapped[str] = mapped_column(String(256), default="")
    value: Mapped[float | None] = mapped_column(Float)
    undefined_reason: Mapped[str | None] = mapped_column(Text)
    sample_count: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(32), default="submitted")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The version's stage, denormalised for the index above. No default: whoever adds a
    # metric says which stage its version is in (an omission fails on NOT NULL).
    stage: Mapped[Stage] = mapped_column(StrEnumText(Stage, 16))

    model_version: Mapped[ModelVersion] = relationship(lazy="raise", back_populates="metrics")


class EvaluationEvidence(Base):
    """Raw evaluation results a significance gate can test: per-example correctness,
    success counts or per-example losses, for one version on one dataset."""

    __tablename__ = "evaluation_evidence"
    __table_args__ = (
        UniqueConstraint("version_id", "dataset", "kind"),
        CheckConstraint("kind IN ('correctness', 'counts', 'losses')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    dataset: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    # Up to a million values: loaded only by the gates that test them.
    payload: Mapped[dict[str, Any]] = mapped_column(deferred=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VersionSearchTerm(Base):
    """One searchable label of a version: a tag (``tag:<key>``) or a scalar lineage field
    (``lineage:<field>``), kept beside the version's JSON so that ``?tag=`` and
    ``?lineage.<field>=`` are index range scans on every database. The value is kept as
    its SHA-256: tag values reach 1 KiB and lineage URLs 2 KiB, more than a B-tree entry
    of PostgreSQL takes in multi-byte text."""

    __tablename__ = "version_search_terms"
    __table_args__ = (
        Index(
            "ix_version_search_terms_model_id_key_value_sha256_version",
            "model_id",
            "key",
            "value_sha256",
            "version",
        ),
        Index("ix_version_search_terms_version_id", "version_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="RESTRICT")
    )
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(160))
    value_sha256: Mapped[str] = mapped_column(String(64))
