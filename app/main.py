"""The ASGI application: ``create_app(settings)``, and ``app`` for ``uvicorn app.main:app``."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import Engine

from app import __version__
from app.api import (
    aliases,
    artifacts,
    audit,
    datachecks,
    docs,
    drift,
    health,
    metrics_endpoint,
    models,
    monitoring,
    observations,
    openapi_contract,
    operations,
    problems,
    promotions,
    reproductions,
    rollouts,
    serving,
    tokens,
    versions,
    webhooks,
)
from app.api.deps import reject_unstorable_text
from app.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from app.api.problems import Problem
from app.api.query import reject_unknown_query
from app.auth import service as auth_service
from app.auth.cache import TokenCache
from app.auth.roles import SYSTEM, Role
from app.console import routes as console
from app.db import migrate
from app.db.engine import build_engine, build_sessionmaker, read_only_bind
from app.errors import ConfigurationError
from app.events.dispatcher import Dispatcher
from app.logging_setup import configure_logging
from app.mlflow import routes as mlflow_routes
from app.monitoring.checker import MonitoringChecker
from app.observability.middleware import MetricsMiddleware
from app.rollouts.driver import Driver as RolloutDriver
from app.serving.hub import ServingHub
from app.settings import Settings, get_settings
from app.storage.factory import open_store

log = logging.getLogger("modelgate")

API_PREFIX = "/api/v1"
DESCRIPTION = """\
Modelgate takes candidate models from CI, checks promotion gates against evidence,
asks reviewers for approval, rolls production back in one call, and writes every
change to a hash-chained audit log.

Every error is `application/problem+json`; branch on its `code`.
"""


def prepare_database(engine: Engine, settings: Settings) -> None:
    """Migrate the embedded default; refuse to serve a PostgreSQL schema that is behind."""
    if settings.should_auto_migrate:
        key = settings.secret_key
        migrate.upgrade(engine, secret_key=key.get_secret_value() if key else None)
        return
    current = migrate.current_revision(engine)
    head = migrate.head_revision()
    if current != head:
        raise ConfigurationError(
            f"database schema is at {current or 'nothing'}, this server needs {head}: "
            "run `modelgate db upgrade`"
        )


def bootstrap_tokens(app: FastAPI, settings: Settings) -> None:
    sessions = app.state.sessions
    with sessions() as session, session.begin():
        if settings.bootstrap_admin_token is not None:
            secret = settings.bootstrap_admin_token.get_secret_value()
            if auth_service.ensure_bootstrap_admin(session, secret=secret):
                log.info("created the bootstrap admin token from MODELGATE_BOOTSTRAP_ADMIN_TOKEN")
            return
        if settings.is_sqlite and not auth_service.has_any_admin(session):
            _, secret = auth_service.create_token(
                session, actor=SYSTEM, name="first-admin", role=Role.ADMIN
            )
            # Shown once, on purpose, on the terminal of whoever started the embedded
            # default; only its hash is kept.
            sys.stderr.write(
                "\n  Modelgate created an admin token (shown only this once):\n\n"
                f"    {secret}\n\n"
                "  export MODELGATE_TOKEN=<that token> to use the CLI.\n\n"
            )
            sys.stderr.flush()


def _warm_up_scipy() -> None:
    """Import scipy (1-2 s of CPU) in the background once the server is up: the gates and
    drift statistics import it on first use, so the process is ready without waiting for
    it and the first significance test or drift report need not pay for it either."""

    def load() -> None:
        import scipy.spatial.distance
        import scipy.stats  # noqa: F401

    threading.Thread(target=load, name="modelgate-scipy-warm-up", daemon=True).start()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        dispatcher: Dispatcher | None = None
        serving_hub: ServingHub | None = None
        rollout_driver: RolloutDriver | None = None
        monitor: MonitoringChecker | None = None
        try:
            prepare_database(engine, settings)
            app.state.engine = engine
            app.state.sessions = build_sessionmaker(engine)
            app.state.read_bind = read_only_bind(engine) if settings.is_sqlite else None
            app.state.store = open_store(
                settings.artifact_store,
                s3_endpoint_url=settings.s3_endpoint_url,
                s3_region=settings.s3_region,
                part_size=settings.upload_part_size_mib * 1024 * 1024,
                parts_in_flight=settings.upload_parts_in_flight,
            )
            bootstrap_tokens(app, settings)
            serving_hub = ServingHub(
                engine=engine, sessions=app.state.sessions, read_bind=app.state.read_bind
            )
            await serving_hub.start()
            app.state.serving_hub = serving_hub
            _warm_up_scipy()
            if settings.webhook_dispatcher_enabled:
                dispatcher = Dispatcher(
                    sessions=app.state.sessions, settings=settings, read_bind=app.state.read_bind
                )
                dispatcher.start()
            app.state.dispatcher = dispatcher
            if settings.rollout_driver_enabled:
                rollout_driver = RolloutDriver(sessions=app.state.sessions, settings=settings)
                rollout_driver.start()
            app.state.rollout_driver = rollout_driver
            monitor = MonitoringChecker(
                sessions=app.state.sessions, settings=settings, store=app.state.store
            )
            if settings.monitoring_enabled:
                monitor.start()
            app.state.monitor = monitor
            log.info(
                "modelgate %s ready: database %s, artifacts %s",
                __version__,
                engine.url.render_as_string(hide_password=True),
                app.state.store.describe(),
            )
            yield
        finally:
            if rollout_driver is not None:
                rollout_driver.stop()
            if serving_hub is not None:
                await serving_hub.stop()
            if dispatcher is not None:
                dispatcher.stop()
            if monitor is not None:
                monitor.stop()
            engine.dispose()

    app = FastAPI(
        title="Modelgate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by app/api/docs.py with local assets
        redoc_url=None,
        generate_unique_id_function=docs.operation_id,
        dependencies=[Depends(reject_unstorable_text), Depends(reject_unknown_query)],
    )
    app.state.settings = settings
    app.state.token_cache = TokenCache(settings.auth_cache_seconds)
    problems.install(app)
    for router in (
        models.router,
        aliases.router,  # before versions: its /versions/@{alias} must match first
        versions.router,
        artifacts.router,
        artifacts.scrub_router,
        promotions.router,
        operations.router,
        tokens.router,
        tokens.principals_router,
        audit.router,
        webhooks.router,
        drift.router,
        observations.router,
        monitoring.router,
        serving.router,
        reproductions.router,
        datachecks.router,
        rollouts.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(health.router, include_in_schema=False)
    app.include_router(metrics_endpoint.router, prefix=API_PREFIX)
    app.include_router(metrics_endpoint.router, include_in_schema=False)
    app.include_router(docs.router, prefix=API_PREFIX)
    console.install(app)
    mlflow_routes.install(app)
    # Innermost: the serving plan's common requests skip the dependency machinery.
    app.add_middleware(serving.ServingFastPath)
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_json_body_bytes,
        artifact_limit=settings.max_artifact_bytes,
    )
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestContextMiddleware)
    _add_problem_schema(app)
    return app


def _add_problem_schema(app: FastAPI) -> None:
    """Make sure the Problem schema is in the spec even where only referenced by $ref."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.setdefault(
                "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            )
            docs.add_security(schema)
            app.openapi_schema = openapi_contract.complete(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` gets an application built from the environment on first
    # access, not at import time, so importing this module never reads settings.
    if name == "app":
        return create_app()
    raise AttributeError(name)
