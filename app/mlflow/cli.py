"""The ``modelgate import mlflow`` command (server-side: uses the MODELGATE_* settings).

Only click at import time; the importer and the server modules load when it runs."""

from __future__ import annotations

import click


@click.group("import")
def import_group() -> None:
    """Import models from another registry (server-side: uses MODELGATE_* settings)."""


@import_group.command("mlflow")
@click.option("--tracking-uri", required=True, help="The MLflow tracking server to import from.")
@click.option("--model", "model", default=None, help="Import only this registered model.")
@click.option("--all", "all_models", is_flag=True, help="Import every registered model.")
def import_mlflow(tracking_uri: str, model: str | None, all_models: bool) -> None:
    """Copy an MLflow registry: models, versions (files hashed), tags, run metrics and
    parameters, stages. Idempotent and resumable; each version is audited as an import."""
    if (model is None) == (not all_models):
        raise click.UsageError("give either --model NAME or --all")
    from app.db.engine import build_engine, build_sessionmaker
    from app.errors import AppError, ConfigurationError
    from app.main import prepare_database
    from app.mlflow.importer import run_import
    from app.mlflow.sources import SourceUnreadable
    from app.settings import get_settings
    from app.storage.factory import open_store
    from modelgate_client.cli.common import EXIT_FAILED, fail

    settings = get_settings()
    store = open_store(
        settings.artifact_store,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        part_size=settings.upload_part_size_mib * 1024 * 1024,
        parts_in_flight=settings.upload_parts_in_flight,
    )
    engine = build_engine(settings)
    try:
        prepare_database(engine, settings)
    except ConfigurationError as exc:
        engine.dispose()
        fail(str(exc))
    try:
        tally = run_import(
            settings=settings, session_factory=build_sessionmaker(engine), store=store,
            tracking_uri=tracking_uri, model=model, echo=click.echo,
        )  # fmt: skip
    except (SourceUnreadable, AppError) as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    if tally.failed:
        fail(f"{tally.failed} version(s) failed; run the import again to retry them", EXIT_FAILED)
