"""The server's commands of ``modelgate``: ``serve``, ``db upgrade``, ``db current`` and
``db rekey-secrets``
(``tokens create --bootstrap`` writes straight to a database: :mod:`app.cli.bootstrap`).

The ``modelgate`` command itself lives in the client distribution
(:mod:`modelgate_client.cli.main`); this distribution adds these commands to it through
the ``modelgate.commands`` entry point (:func:`register`). They use the database
directly, with the ``MODELGATE_*`` server settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modelgate_client.cli.common import emit, fail, output_option

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["register"]


def load_settings() -> Settings:
    # Imported here: the HTTP commands need neither pydantic-settings nor the server.
    from app.errors import ConfigurationError
    from app.settings import get_settings

    try:
        return get_settings()
    except ConfigurationError as exc:
        fail(str(exc))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes. More than one runs gunicorn with uvicorn workers.",
)
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Run the registry server."""
    settings = load_settings()
    _preflight(settings)
    click.echo(banner(host, port), err=True)
    if workers == 1:
        import uvicorn

        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=75,  # past the longest long poll (wait <= 60 s)
        )
        return
    # uvicorn --workers N on the asyncio loop leaves TCP_NODELAY off on accepted sockets
    # (a ~40 ms delayed-ACK stall per kept-alive response); gunicorn sets it on the
    # listening socket whatever the loop. See docs/decisions/0003-serving-processes.md.
    from app.cli.gunicorn_app import run_gunicorn

    run_gunicorn(host=host, port=port, workers=workers, log_level=log_level)


def banner(host: str, port: int) -> str:
    """What a person starting the server needs next: the console, the docs, the CLI."""
    from app import __version__

    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    return "\n".join(
        [
            f"Modelgate {__version__} starting on {url}",
            f"  console   {url}/ui/",
            f"  API docs  {url}/api/v1/docs  (ReDoc: {url}/api/v1/redoc)",
            f"  CLI       export MODELGATE_URL={url} MODELGATE_TOKEN=<token>; modelgate --help",
        ]
    )


def _preflight(settings: Settings) -> None:
    """Fail with one clear line before the server starts, not with a traceback after."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.engine import build_engine
    from app.errors import ConfigurationError
    from app.main import prepare_database
    from app.storage.factory import open_store

    try:
        open_store(
            settings.artifact_store,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
        )
    except ConfigurationError as exc:
        fail(str(exc))
    engine = build_engine(settings)
    try:
        prepare_database(engine, settings)
    except ConfigurationError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        fail(f"cannot use the database {engine.url.render_as_string()}: {reason}")
    finally:
        engine.dispose()


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@output_option
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import migrate
    from app.db.engine import build_engine

    settings = load_settings()
    engine = build_engine(settings)
    try:
        key = settings.secret_key
        migrate.upgrade(engine, revision, secret_key=key.get_secret_value() if key else None)
        emit(
            {"database": migrate.current_revision(engine)}, lambda d: f"database at {d['database']}"
        )
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        fail(f"migration failed: {reason}")
    finally:
        engine.dispose()


@db.command("current")
@output_option
def db_current() -> None:
    """Print the schema revision of the database and the one this version needs."""
    from app.db import migrate
    from app.db.engine import build_engine

    engine = build_engine(load_settings())
    try:
        state = {"database": migrate.current_revision(engine), "needed": migrate.head_revision()}
        emit(state, lambda d: f"database: {d['database']}  needed: {d['needed']}")
    finally:
        engine.dispose()


def rekey_secrets(settings: Settings) -> int:
    """Seal every stored webhook secret under ``settings.secret_key`` (one transaction);
    returns how many were sealed again."""
    from sqlalchemy.orm import Session

    from app.db.engine import build_engine
    from app.events import service as events

    box = settings.secret_box
    if box is None:
        fail("MODELGATE_SECRET_KEY is not set: there is no key to seal the secrets under")
    engine = build_engine(settings)
    try:
        with Session(engine) as session, session.begin():
            return events.rekey_secrets(session, box=box)
    finally:
        engine.dispose()


@db.command("rekey-secrets")
@output_option
def db_rekey_secrets() -> None:
    """Seal every webhook secret again under MODELGATE_SECRET_KEY, opening those sealed under
    an earlier key (MODELGATE_SECRET_KEYS_PREVIOUS); afterwards the earlier keys can go."""
    from app.events.secretbox import SecretKeyError

    try:
        changed = rekey_secrets(load_settings())
    except SecretKeyError as exc:
        fail(f"nothing changed: {exc}")
    emit({"resealed": changed}, lambda d: f"{d['resealed']} webhook secret(s) sealed again")


def register(root: click.Group) -> None:
    """Add the server commands to the ``modelgate`` group (entry point ``modelgate.commands``)."""
    from app.mlflow.cli import import_group

    root.add_command(serve)
    root.add_command(db)
    root.add_command(import_group)


if __name__ == "__main__":  # pragma: no cover
    from modelgate_client.cli.main import main

    main(prog_name="modelgate")
