"""The principal and API token tables. Only a hash of each secret is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class PrincipalRecord(Base):
    """A person or a service account: the identity that holds tokens, approves and is
    audited. Its name is unique; one person with two tokens is one principal."""

    __tablename__ = "principals"
    __table_args__ = (CheckConstraint("kind IN ('person', 'service')", name="kind"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(
            "role IN ('reader', 'submitter', 'reviewer', 'operator', 'admin', 'auditor')",
            name="role",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # A label for the token ("laptop", "ci-nightly"); who acts is the principal.
    name: Mapped[str] = mapped_column(String(128))
    principal_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("principals.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    model_scope: Mapped[str | None] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(256))
