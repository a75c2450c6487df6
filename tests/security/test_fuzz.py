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

# Disagreements still open (issue #20, decision 0025): rules relating items or fields in
# ways JSON Schema cannot state, with no sensible answer other than a refusal. Each is to
# be stated, reshaped or given a meaning like the others were; nothing may be added here.
# Every other refusal that depends on stored state or the clock is a 409 (counted as an
# acceptance), and every route declares its problem answers (app/api/openapi_contract.py).
KNOWN_OPEN = {
    # sample columns of one length; histogram edges one longer than counts (array lengths)
    "POST /api/v1/models/{model}/drift-reports: positive_data_acceptance (422 validation-failed)",
    "POST /api/v1/models/{model}/versions/{version}/reference-profile: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions/{version}/data-checks: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # square confusion matrices, equal-length regression arrays, successes <= total
    "POST /api/v1/models/{model}/versions/{version}/metrics: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions: positive_data_acceptance (422 validation-failed)",
    # a policy's metric directions, rule ranges and monitoring marginal <= pass score
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 invalid-policy)",
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 validation-failed)",
    # an empty artifact body; a declared digest that does not match the body
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 checksum-mismatch)",  # noqa: E501
    # reproduced metrics unique by (name, dataset, slice) (items relate)
    "POST /api/v1/models/{model}/versions/{version}/reproductions: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # step weights strictly increase, metric names unique, marginal_score <= pass_score
    "POST /api/v1/models/{model}/rollouts: positive_data_acceptance (422 validation-failed)",
}  # fmt: skip


# Scenarios schemathesis itself failed in (no request judged), still open: its negative
# generator gives up on VersionCreate ("Cannot generate an array with 1 demanded
# elements"; it passes when artifact, evidence or lineage is left out of the schema,
# each of which is generable alone), and its coverage phase on GET /audit/export meets a
# CPython "AST constructor recursion depth mismatch" SystemError (not every run). Any
# other generation error fails the test.
GENERATION_OPEN = {
    "POST /api/v1/models/{model}/versions: error in the fuzzing phase",
    "GET /api/v1/audit/export: error in the coverage phase",
}


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
