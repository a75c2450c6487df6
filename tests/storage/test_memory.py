"""store_stream keeps memory flat: a large upload costs a few parts, not its size."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.s3server import MotoServer

PROBE = Path(__file__).with_name("stream_probe.py")


def test_256_mib_upload_keeps_peak_rss_growth_under_64_mib(
    moto_server: MotoServer, bucket: str, record_property: Callable[[str, object], None]
) -> None:
    # In a fresh process: peak RSS is a whole-process figure, the runner's would blur it.
    done = subprocess.run(
        [
            sys.executable,
            str(PROBE),
            "--endpoint",
            moto_server.endpoint_url,
            "--bucket",
            bucket,
            "--mib",
            "256",
            # With the digest known the upload goes straight to its key: the same
            # streaming as without, minus moto's slow server-side copy of 256 MiB.
            "--expected",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for name, value in figures.items():
        record_property(name, value)
    print(f"store_stream 256 MiB into moto: {figures}")  # noqa: T201

    assert figures["bytes"] == 256 << 20
    assert figures["peak_growth_mib"] < 64, figures
