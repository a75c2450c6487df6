"""Console sign-in sessions. Only a hash of each session id is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class ConsoleSession(Base):
    """A browser signed in with an API token; it acts as that token's principal."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_token_id", "token_id"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("api_tokens.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
