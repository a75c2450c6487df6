"""Fixtures for storage tests: moto's S3 server over HTTP, fresh buckets, and a
``case`` fixture that runs each behaviour test on both stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from app.storage import LocalDirectoryStore, S3Store
from tests.storage.cases import PART, StoreCase
from tests.support.s3server import TEST_CREDENTIALS, MotoServer, start_moto_server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for boto3's normal chain, and nothing from the developer's machine."""
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def s3_admin(moto_server: MotoServer) -> Any:
    """A plain boto3 client for looking behind the store's back."""
    return boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def empty_bucket(client: Any, bucket: str) -> None:
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])


@pytest.fixture
def bucket(s3_admin: Any) -> Iterator[str]:
    name = f"mg-test-{uuid.uuid4().hex[:16]}"
    s3_admin.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3_admin, name)
    s3_admin.delete_bucket(Bucket=name)


@pytest.fixture
def local_case(tmp_path: Path) -> StoreCase:
    root = tmp_path / "artifacts"
    return StoreCase("local", LocalDirectoryStore(root, part_size=PART), root=root)


@pytest.fixture
def s3_case(moto_server: MotoServer, s3_admin: Any, bucket: str) -> StoreCase:
    store = S3Store(
        bucket, "models/", endpoint_url=moto_server.endpoint_url, region="us-east-1", part_size=PART
    )
    return StoreCase("s3", store, client=s3_admin, bucket=bucket, prefix="models")


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest) -> StoreCase:
    """Each behaviour test runs once per store."""
    return request.getfixturevalue(f"{request.param}_case")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
