"""Schemathesis over the whole API, every phase and every check, as CI can afford.

Runs ``scripts/fuzz.py`` (the same driver as ``scripts/fuzz``, at a smaller size): a live
server on this module's database (PostgreSQL, or SQLite in a temporary directory), the
examples, coverage, fuzzing and stateful phases (the stateful one walks the document's
links: a created model to its versions, a version to its artifact, evaluation and
promotions, a promotion to approve and reject, a webhook to its deliveries), and every
check schemathesis has, among them: no 5xx; status, content type, headers and body as
declared; schema-valid requests accepted and invalid ones refused; 405s whose ``Allow``
is true; no answer without authentication. ``scripts/fuzz.py`` excuses only the one
documented case (a made-up opaque cursor answered 400); refusals that depend on stored
state or the clock are 409s (decision 0025). Any other disagreement, and any scenario
schemathesis could not generate cases for, fails this test unless it is one of
:data:`KNOWN_OPEN` (still open, each named with its reason; ``scripts/fuzz`` itself fails
on them). Every status an operation can answer is declared (app/api/openapi_contract.py
adds the shared ones to every route, new routes included), so none is excused.

About 6,700 cases with an admin token: 2-3 minutes alone, about 10 on a loaded machine.
``MODELGATE_FUZZ_EXAMPLES`` and ``MODELGATE_FUZZ_SEED`` change the size and the cases;
``scripts/fuzz`` runs 10,000 and more with a token of every role.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.conftest import TEST_DB

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = os.environ.get("MODELGATE_FUZZ_EXAMPLES", "5")
SEED = os.environ.get("MODELGATE_FUZZ_SEED", "1")

# Disagreements still open (issue #20, decisions 0025 and 0026): rules relating items or
# fields in ways JSON Schema cannot state (two arrays' lengths, two numbers, one item with
# the next), with no reshape that keeps the request shapes users rely on and no sensible
# answer other than a refusal. What the document can state of them it states (decision
# 0026: distinct confusion-matrix labels, a matrix not all zero, an artifact body of at
# least one byte, a reproduction with an artifact or metrics). Nothing may be added here.
# Every other refusal that depends on stored state or the clock is a 409 (counted as an
# acceptance), and every route declares its problem answers (app/api/openapi_contract.py).
KNOWN_OPEN = {
    # sample columns of one length; histogram edges one longer than counts (array lengths);
    # edges not decreasing (one item with the next); data checks: min_row_ratio <= max
    "POST /api/v1/models/{model}/drift-reports: positive_data_acceptance (422 validation-failed)",
    "POST /api/v1/models/{model}/versions/{version}/reference-profile: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions/{version}/data-checks: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # square confusion matrices (up to 1,000 classes), labels one per row, equal-length
    # regression arrays, evidence successes <= total
    "POST /api/v1/models/{model}/versions/{version}/metrics: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions: positive_data_acceptance (422 validation-failed)",
    # a policy's metric directions, rule ranges and monitoring marginal <= pass score
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 invalid-policy)",
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 validation-failed)",
    # a declared X-Artifact-SHA256 that does not match the body (a header and the body)
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 checksum-mismatch)",  # noqa: E501
    # reproduced metrics unique by (name, dataset, slice) (items relate by three fields)
    "POST /api/v1/models/{model}/versions/{version}/reproductions: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # step weights strictly increase, metric names unique, marginal_score <= pass_score
    "POST /api/v1/models/{model}/rollouts: positive_data_acceptance (422 validation-failed)",
    # a webhook URL holding an IP literal the server refuses (reserved, multicast; private
    # and link-local unless configured): which ones depends on the server's settings, and
    # the document states only the URL's shape. Open since 0025 (the old bracket pattern
    # matched the same literals); found again once the pattern was corrected (0026).
    "POST /api/v1/webhooks: positive_data_acceptance (422 validation-failed)",
}  # fmt: skip


# Scenarios schemathesis itself failed in (no request judged): none is open. Its negative
# generator gave up on VersionCreate until the evidence items lost their ``discriminator``
# hint, and a CPython 3.11 race between its worker threads (``ast.parse``, made one call at
# a time by scripts/fuzz_hooks.py) was the coverage phase's SystemError on GET
# /audit/export (decision 0026). Any generation error fails the test.
GENERATION_OPEN: set[str] = set()


def is_known(line: str) -> bool:
    """An open disagreement or generation error named above."""
    return line in KNOWN_OPEN or line in GENERATION_OPEN


@pytest.mark.timeout(900)  # about 2 minutes alone; much more on a loaded machine
def test_schemathesis_finds_no_disagreement(module_database: str, tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "scripts" / "fuzz.py"),
        "--cases", "0", "--max-rounds", "1", "--roles", "admin",
        "--max-examples", MAX_EXAMPLES, "--seed", SEED,
        "--report-dir", str(tmp_path / "reports"),
    ]  # fmt: skip
    if TEST_DB == "postgres":
        command += ["--database-url", module_database]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT
    )
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), output[-12000:]
    failed = {line.strip().removeprefix("FAILED ") for line in output.splitlines()
              if line.startswith("  FAILED ")}  # fmt: skip
    unknown = sorted(line for line in failed if not is_known(line))
    assert not unknown, "\n".join(unknown) + output[-6000:]
    total = re.search(r"fuzz: (\d+) test cases", output)
    assert total is not None, output[-4000:]
    assert int(total.group(1)) >= 1000, output[-4000:]
