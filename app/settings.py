"""Configuration, read from ``MODELGATE_*`` environment variables (and a ``.env`` file).

There is no settings instance at import time: :func:`get_settings` builds one, and
``create_app(settings)`` takes one, so tests and the CLI construct their own.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from app.errors import ConfigurationError
from app.events.secretbox import SecretBox, decode_key

DEFAULT_DATA_DIR = Path("modelgate-data")


class Settings(BaseSettings):
    """Every knob Modelgate reads. The README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="MODELGATE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR}/modelgate.db",
        description="SQLAlchemy URL: postgresql+psycopg://... or sqlite:///path.",
    )
    artifact_store: str = Field(
        default=str(DEFAULT_DATA_DIR / "artifacts"),
        description="A directory path, or s3://bucket/prefix for any S3-compatible store.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, Ceph); unset for AWS."
    )
    s3_region: str | None = Field(default=None, description="Region of the S3 bucket.")
    s3_presign_downloads: bool = Field(
        default=False,
        description="Redirect artifact downloads to presigned URLs (clients must reach the store).",
    )
    presign_expiry_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    upload_part_size_mib: int = Field(
        default=8,
        ge=5,
        le=64,
        description="Multipart part size; memory per upload is about (parts in flight + 1) parts.",
    )
    upload_parts_in_flight: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Parts of one upload sent to S3 at once; memory per upload is about "
        "this many parts plus one (the local directory store writes one part at a time).",
    )
    max_artifact_bytes: int = Field(
        default=50 * 1024**3, ge=1, description="Largest artifact accepted."
    )
    max_json_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest JSON request body accepted."
    )

    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_pool_overflow: int = Field(default=5, ge=0, le=500)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    auto_migrate: bool | None = Field(
        default=None,
        description="Upgrade the schema at start. Default: on for SQLite, off for PostgreSQL.",
    )

    bootstrap_admin_token: SecretStr | None = Field(
        default=None,
        description="Create an admin token with this value at start when no admin token exists.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a server process remembers a token that authenticated; a "
        "revocation made through another process takes up to this long to reach it. "
        "0 looks every token up on every request.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking server the MLflow API reads runs:/, models:/m-... and "
        "mlflow-artifacts:/ sources and run metrics, parameters and tags from.",
    )
    mlflow_tracking_token: SecretStr | None = Field(
        default=None, description="Bearer token for the MLflow tracking server, if it needs one."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"
    cors_allow_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed by CORS; empty (the default) turns CORS off.",
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts webhook secrets at rest (AES-256-GCM): 32 random "
        "bytes, base64. Without it, webhooks cannot be created or delivered.",
    )
    secret_keys_previous: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier secret keys (a JSON list): they still open secrets sealed "
        "under them until `modelgate db rekey-secrets` seals them again under secret_key.",
    )

    webhook_dispatcher_enabled: bool = Field(
        default=True, description="Run the webhook dispatcher in this server process."
    )
    webhook_poll_interval_seconds: float = Field(
        default=0.5, gt=0, le=60, description="How often the dispatcher looks for due deliveries."
    )
    webhook_idle_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="With no delivery open, the dispatcher's looks slow down to one per this "
        "long. Its own process's commits wake it at once; deliveries written by another "
        "process wait up to this long.",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of one delivery attempt."
    )
    webhook_max_attempts: int = Field(
        default=12, ge=1, le=100, description="Attempts before a delivery is marked dead."
    )
    webhook_backoff_base_seconds: float = Field(
        default=1.0, gt=0, description="First retry delay (exponential, with equal jitter)."
    )
    webhook_backoff_cap_seconds: float = Field(
        default=600.0, gt=0, description="Longest retry delay."
    )
    webhook_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed delivery stays claimed; a process that died while "
        "sending frees it after this (at least the timeout plus one second).",
    )
    webhook_batch_size: int = Field(default=20, ge=1, le=1000)
    webhook_concurrency: int = Field(
        default=4, ge=1, le=64, description="Deliveries sent at once by one process."
    )
    webhook_allow_private_networks: bool = Field(
        default=True,
        description="Allow webhook URLs on loopback and private networks (on-prem receivers).",
    )
    webhook_allow_link_local: bool = Field(
        default=False,
        description="Allow webhook URLs on link-local and cloud metadata addresses.",
    )
    drift_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows of a raw sample a profile or window may hold."
    )
    drift_reference_sample_size: int = Field(
        default=5_000, ge=0, le=100_000,
        description="Values per numeric feature kept from a reference sample for the KS test.",
    )  # fmt: skip
    observation_window_seconds: int = Field(
        default=60, ge=1, le=3600,
        description="Width of the time windows observations from serving are folded into.",
    )  # fmt: skip
    observation_retention_hours: int = Field(
        default=168, ge=1, le=24 * 366,
        description="How long observation windows and predictions awaiting labels are kept.",
    )  # fmt: skip
    observation_latency_sample: int = Field(
        default=500, ge=10, le=100_000,
        description="Latencies kept per window, version and role (uniform reservoir sample).",
    )  # fmt: skip
    rollout_driver_enabled: bool = Field(
        default=True, description="Run the rollout driver (automatic analysis) in this process."
    )
    rollout_tick_seconds: float = Field(
        default=1.0, gt=0, le=60,
        description="How often the rollout driver looks for rollouts whose analysis is due.",
    )  # fmt: skip
    rollout_idle_tick_seconds: float = Field(
        default=10.0, gt=0, le=600,
        description="How often the rollout driver looks while no rollout runs (a rollout "
        "started, resumed or approved in this process, or an observation batch, wakes it at "
        "once; one started through another process is seen within this time).",
    )  # fmt: skip
    rollout_observation_grace_seconds: int = Field(
        default=300, ge=0, le=86_400,
        description="How long after a rollout ends observations for its versions are still "
        "taken (routers still on the previous plan).",
    )  # fmt: skip
    observation_max_clock_skew_seconds: int = Field(
        default=300, ge=0, le=86_400,
        description="How far in the future an observation's time may lie (serving clocks).",
    )  # fmt: skip
    monitoring_enabled: bool = Field(
        default=True,
        description="Run the after-release monitoring checker in this server process.",
    )
    monitoring_poll_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        description="How often the checker wakes (each model's policy says when a check is due).",
    )  # fmt: skip
    console_session_seconds: int = Field(
        default=12 * 3600, ge=1, le=30 * 24 * 3600,
        description="Longest life of a console sign-in session (never past its token's expiry).",
    )  # fmt: skip
    console_idle_seconds: int = Field(
        default=1800, ge=1, le=7 * 24 * 3600,
        description="A console session unused this long is signed out.",
    )  # fmt: skip
    problem_type_base_url: str | None = Field(
        default=None,
        description="Base of every problem's `type` URI (the code is appended); default: "
        "this server's catalogue, <server URL>/api/v1/problems/.",
    )

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An empty variable (compose's ${MODELGATE_SECRET_KEY:-}) means "not configured".
        return None if value == "" else value

    @field_validator("secret_key")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value.get_secret_value())
        return value

    @field_validator("secret_keys_previous")
    @classmethod
    def _usable_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            decode_key(key.get_secret_value())
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if not (scheme.startswith("postgresql") or scheme.startswith("sqlite")):
            raise ValueError(
                f"unsupported database {scheme!r}: use postgresql+psycopg://... or sqlite:///path"
            )
        if scheme == "postgresql" or scheme == "postgres":
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 while 2.0 maps it to
            # psycopg2; naming the driver keeps behaviour the same across versions.
            value = "postgresql+psycopg" + value[len(scheme) :]
        return value

    @field_validator("artifact_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(
                f"unsupported artifact store {value!r}: use a directory path or s3://bucket/prefix"
            )
        if value.startswith("s3://") and not value[len("s3://") :].split("/", 1)[0]:
            raise ValueError("artifact store s3:// needs a bucket name: s3://bucket/prefix")
        return value

    @property
    def secret_box(self) -> SecretBox | None:
        """What seals and opens webhook secrets (None: no key configured)."""
        if self.secret_key is None:
            return None
        return SecretBox.from_texts(
            self.secret_key.get_secret_value(),
            [k.get_secret_value() for k in self.secret_keys_previous],
        )

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


def get_settings() -> Settings:
    """Build settings from the environment, or raise ConfigurationError with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = "MODELGATE_" + field.upper().replace(".", "__")
            problems.append(f"{env}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
    except SettingsError as exc:
        # Raised before validation when a list or dict setting is not valid JSON.
        found = re.search(r'field "([^"]+)"', str(exc))
        env = "MODELGATE_" + found.group(1).upper() if found else "a MODELGATE_ variable"
        raise ConfigurationError(
            f'invalid configuration: {env}: not valid JSON (lists look like ["a", "b"])'
        ) from None
