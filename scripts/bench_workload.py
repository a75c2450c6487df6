"""The workload, its sizes, and the generated artifact shared by every target.

Modelgate and MLflow run the same phases with the same data (see bench_modelgate.py and
bench_mlflow.py); only the REST calls differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Scale:
    name: str
    models: int
    versions: int
    promoted: int
    reads: int
    read_page: int
    lists: int
    list_limit: int
    upload_mib: int
    pgbench_seconds: int
    seed_small: int
    seed_large: int
    scale_queries: int
    scale_deep_pages: int


SCALES = {
    "full": Scale(
        name="full",
        models=10,
        versions=2000,
        promoted=200,
        reads=5000,
        read_page=20,
        lists=200,
        list_limit=100,
        upload_mib=256,
        pgbench_seconds=10,
        seed_small=1_000,
        seed_large=1_000_000,
        scale_queries=200,
        scale_deep_pages=20,
    ),
    "small": Scale(
        name="small",
        models=2,
        versions=20,
        promoted=4,
        reads=60,
        read_page=5,
        lists=10,
        list_limit=5,
        upload_mib=12,
        pgbench_seconds=1,
        seed_small=100,
        seed_large=1_000,
        scale_queries=5,
        scale_deep_pages=2,
    ),
}

DATASET = "holdout"


def warm_up_scale(scale: Scale) -> Scale:
    """The warm-up before each measured run: one model, a few requests of each phase."""
    return dataclasses.replace(
        scale,
        models=1,
        versions=min(scale.versions, 40),
        promoted=2,
        reads=min(scale.reads, 90),
        lists=5,
        list_limit=min(scale.list_limit, 20),
    )


@dataclass(frozen=True)
class VersionSpec:
    """One version to create: its model, lineage, metrics and tags."""

    model_index: int
    lineage: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]


def version_specs(scale: Scale, seed: int) -> list[VersionSpec]:
    """The versions of a run, round-robin over the models; accuracy is always >= 0.5 so
    that the threshold gate passes."""
    rng = random.Random(seed)
    specs = []
    for i in range(scale.versions):
        accuracy = round(rng.uniform(0.5, 0.99), 4)
        specs.append(
            VersionSpec(
                model_index=i % scale.models,
                lineage={
                    "code_commit": f"{rng.getrandbits(160):040x}",
                    "code_repository": "https://git.example.com/ml/fraud",
                    "data_version": f"transactions@2026-11-{1 + i % 28:02d}",
                    "feature_pipeline_version": f"features-v{1 + i % 20}",
                    "environment": "sha256:" + f"{rng.getrandbits(256):064x}",
                    "hyperparameters": {"max_depth": 6, "eta": 0.3, "n_estimators": 200 + i},
                    "seed": i,
                    "training_run_id": f"run-{i}",
                    "ci_run_url": f"https://ci.example.com/runs/{100000 + i}",
                },
                metrics={
                    "accuracy": accuracy,
                    "f1": round(accuracy - 0.03, 4),
                    "rmse": round(1.0 - accuracy, 4),
                },
                tags={"team": "risk", "trigger": "nightly" if i % 3 else "manual"},
            )
        )
    return specs


def promoted_versions(scale: Scale) -> list[tuple[int, int]]:
    """(model index, version number) pairs to promote, spread evenly over each model's
    versions and interleaved across models."""
    per_model_versions = scale.versions // scale.models
    per_model = max(1, scale.promoted // scale.models)
    step = max(1, per_model_versions // per_model)
    picks: list[tuple[int, int]] = []
    for k in range(per_model):
        for m in range(scale.models):
            number = 1 + k * step
            if number <= per_model_versions and len(picks) < scale.promoted:
                picks.append((m, number))
    return picks


def read_mix(scale: Scale, seed: int) -> list[tuple[str, int, int]]:
    """(kind, model index, version) for the mixed reads: a third each of the production
    version by stage, one version, and a page of versions."""
    rng = random.Random(seed)
    per_model_versions = max(1, scale.versions // scale.models)
    kinds = ("production", "version", "page")
    return [
        (kinds[i % 3], rng.randrange(scale.models), rng.randint(1, per_model_versions))
        for i in range(scale.reads)
    ]


class GeneratedArtifact:
    """``size`` pseudo-random bytes made on the fly, the same on every read: nothing
    of it is held in memory beyond one 1 MiB block, in the benchmark or in a store."""

    block_size = MIB

    def __init__(self, size: int, seed: int = 7) -> None:
        self.size = size
        self._block = random.Random(seed).randbytes(self.block_size)
        self.sha256 = self._digest()

    def chunks(self) -> Iterator[bytes]:
        index = 0
        remaining = self.size
        while remaining > 0:
            block = index.to_bytes(8, "big") + self._block[8:]
            piece = block[: min(remaining, self.block_size)]
            remaining -= len(piece)
            index += 1
            yield piece

    async def achunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks():
            yield chunk

    def _digest(self) -> str:
        hasher = hashlib.sha256()
        for chunk in self.chunks():
            hasher.update(chunk)
        return hasher.hexdigest()

    def reader(self) -> ArtifactReader:
        return ArtifactReader(self)


class ArtifactReader:
    """A read()-able file object over a :class:`GeneratedArtifact` (for boto3)."""

    def __init__(self, artifact: GeneratedArtifact) -> None:
        self._chunks = artifact.chunks()
        self._buffer = b""
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            rest = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return rest
        while len(self._buffer) < size and not self._done:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out
