"""``modelgate tokens create --bootstrap``: a token written straight to the database.

The way in on a fresh deployment and the way back when every admin token is lost (the
server refuses to revoke the last one, but tokens can still be lost or leak). It never
guesses the database from the current directory and never creates one: the URL is
given, a SQLite file must exist, the schema must be the one this version needs, and the
database used is printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelgate_client.cli.common import fail, note


def _check_exists(url: str) -> str:
    """The URL to show (password hidden); fails unless the database is already there."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        fail(f"--database-url is not a database URL: {exc}")
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            fail(f"{shown} names no database file")
        path = Path(parsed.database).resolve()
        if not path.is_file():
            fail(
                f"no database at {path}: refusing to create one. Give the server's own "
                "--database-url (or MODELGATE_DATABASE_URL)"
            )
        shown = f"sqlite:///{path}"
    return shown


def create_token_in_database(
    database_url: str | None,
    *,
    name: str,
    role: str,
    principal: str | None,
    principal_kind: str | None,
    model_scope: str | None,
    expires_in_days: int | None,
) -> dict[str, Any]:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from app.auth import service as auth_service
    from app.auth.roles import Principal, Role
    from app.auth.schemas import TokenCreate
    from app.db import migrate
    from app.db.engine import build_engine, build_sessionmaker
    from app.errors import AppError
    from app.settings import Settings

    if not database_url:
        fail("--bootstrap needs --database-url (or MODELGATE_DATABASE_URL): the server's database")
    try:
        # The same checks as POST /tokens, so a bootstrap token is one the API could make.
        body = TokenCreate(
            name=name,
            role=Role(role),
            principal=principal,
            principal_kind=principal_kind,
            model_scope=model_scope,
            expires_in_days=expires_in_days,
        )
        settings = Settings(database_url=database_url, db_pool_size=1, db_pool_overflow=0)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid token or database URL: {problems}")
    shown = _check_exists(settings.database_url)
    note(f"using database {shown}")
    engine = build_engine(settings)
    try:
        current = migrate.current_revision(engine)
        head = migrate.head_revision()
        if current != head:
            fail(
                f"database {shown} is at schema {current or 'nothing (not a Modelgate database)'}"
                f", this version needs {head}: start the server or run `modelgate db upgrade` "
                "on it first"
            )
        actor = Principal(name=f"cli:{os.environ.get('USER', 'unknown')}", role=Role.ADMIN)
        with build_sessionmaker(engine)() as session, session.begin():
            token, secret = auth_service.create_token(
                session,
                actor=actor,
                name=body.name,
                role=body.role,
                model_scope=body.model_scope,
                expires_in_days=body.expires_in_days,
                principal=body.principal,
                principal_kind=body.principal_kind,
            )
            owner = auth_service.principal_of(session, token)
            created: dict[str, Any] = {
                "id": token.id,
                "name": token.name,
                "principal": owner.name,
                "principal_kind": owner.kind,
                "role": token.role,
                "model_scope": token.model_scope,
                "created_by": token.created_by,
                "created_at": token.created_at.isoformat(),
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                "revoked_at": None,
                "token": secret,
            }
    except AppError as exc:
        fail(f"{exc.title}: {exc}")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        fail(f"cannot use the database {shown}: {reason}")
    finally:
        engine.dispose()
    return created
