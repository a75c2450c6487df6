"""Measure store_stream in a fresh process: peak memory growth and throughput.

Run by test_memory.py (and by hand for figures)::

    python tests/storage/stream_probe.py --endpoint http://127.0.0.1:PORT --bucket B \
        --mib 256 [--reference]

A separate process, because peak RSS (VmHWM) is a process-lifetime figure and the
test runner's own heap would blur it. The body is generated chunk by chunk, as a
client upload arrives, and never held whole. With ``--reference`` the same bytes are
then uploaded with boto3's own ``upload_fileobj`` for a throughput baseline measured
in the same run. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import BinaryIO, cast

import anyio
import boto3

from app.storage import S3Store, store_stream

CHUNK = 64 * 1024  # what an ASGI server typically hands over per receive()
_BLOCK = random.Random(0).randbytes(1 << 20)


def status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


async def generated(size: int, done: list[float] | None = None) -> AsyncIterator[bytes]:
    """``size`` bytes in CHUNK pieces; appends the time the last one was taken to ``done``."""
    sent = 0
    while sent < size:
        offset = sent % len(_BLOCK)
        n = min(CHUNK, size - sent, len(_BLOCK) - offset)
        yield _BLOCK[offset : offset + n]
        sent += n
    if done is not None:
        done.append(time.perf_counter())


class GeneratedReader(io.RawIOBase):
    """The same bytes as generated(), as a file for upload_fileobj."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.sent if n < 0 else min(n, self.size - self.sent)
        pieces = []
        while n > 0:
            offset = self.sent % len(_BLOCK)
            take = min(n, len(_BLOCK) - offset)
            pieces.append(_BLOCK[offset : offset + take])
            self.sent += take
            n -= take
        return b"".join(pieces)

    def iter_chunks(self) -> Iterator[bytes]:
        while chunk := self.read(1 << 20):
            yield chunk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--reference", action="store_true")
    parser.add_argument(
        "--expected", action="store_true", help="pass the digest: direct upload, no copy"
    )
    args = parser.parse_args()
    size = args.mib << 20
    store = S3Store(args.bucket, "probe", endpoint_url=args.endpoint, part_size=args.part_mib << 20)

    # Warm up: imports, thread pool, connections and allocator arenas of a real
    # multipart upload, so the measurement sees only what grows with the body.
    warm = anyio.run(store_stream, store, generated(2 * store.part_size + 1))
    store.delete(warm.key)

    expected = None
    if args.expected:
        hasher = hashlib.sha256()
        for chunk in GeneratedReader(size).iter_chunks():
            hasher.update(chunk)
        expected = hasher.hexdigest()

    rss_before = status_kib("VmRSS")
    exact = reset_peak()
    peak = [rss_before]
    stop = threading.Event()
    if not exact:
        # No clear_refs (old kernel, restricted /proc): sample RSS instead.
        def sample() -> None:
            while not stop.wait(0.005):
                peak.append(status_kib("VmRSS"))

        threading.Thread(target=sample, daemon=True).start()
    received: list[float] = []
    started = time.perf_counter()
    stored = anyio.run(
        functools.partial(store_stream, store, generated(size, received), expected_sha256=expected)
    )
    seconds = time.perf_counter() - started
    stop.set()
    peak_kib = status_kib("VmHWM") if exact else max(peak)
    result: dict[str, object] = {
        "bytes": stored.size,
        "path": "direct (expected digest)" if expected else "temp + server-side copy",
        "part_size": store.part_size,
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_measured_by": "VmHWM" if exact else "VmRSS sampled every 5 ms",
        "peak_growth_mib": round((peak_kib - rss_before) / 1024, 1),
        "seconds": round(seconds, 2),
        "mib_per_s": round(size / (1 << 20) / seconds, 1),
        # From the last byte received to the stored object: the last part, completing
        # the multipart upload and, without a digest, the server-side copy.
        "finish_seconds": round(started + seconds - received[0], 2),
    }
    store.delete(stored.key)

    if args.reference:
        client = boto3.client("s3", endpoint_url=args.endpoint)
        started = time.perf_counter()
        client.upload_fileobj(
            cast("BinaryIO", GeneratedReader(size)), args.bucket, "probe/reference"
        )
        ref_seconds = time.perf_counter() - started
        client.delete_object(Bucket=args.bucket, Key="probe/reference")
        result["reference_seconds"] = round(ref_seconds, 2)
        result["reference_mib_per_s"] = round(size / (1 << 20) / ref_seconds, 1)
    print(json.dumps(result))
    os._exit(0)  # skip interpreter teardown; nothing left to flush


if __name__ == "__main__":
    main()
