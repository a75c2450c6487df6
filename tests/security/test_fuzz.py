"""Schemathesis over the whole API, every phase and every check, as CI can afford.

Runs ``scripts/fuzz.py`` (the same driver as ``scripts/fuzz``, at a smaller size): a live
server on this module's database (PostgreSQL, or SQLite in a temporary directory), the
examples, coverage, fuzzing and stateful phases (the stateful one walks the document's
links: a created model to its versions, a version to its artifact, evaluation and
promotions, a promotion to approve and reject, a webhook to its deliveries), and every
check schemathesis has, among them: no 5xx; status, content type, headers and body as
declared; schema-valid requests accepted and invalid ones refused; 405s whose ``Allow``
is true; no answer without authentication. ``scripts/fuzz.py`` excuses only the documented
cases (a made-up opaque cursor answered 400, an Idempotency-Key reused with another
body, a NUL the generator put where the schema's pattern forbids it). Any other
disagreement fails this test unless it is one of :data:`KNOWN_OPEN`: server-side rules
that JSON Schema cannot state (between two fields, or on stored state, the clock or DNS),
each named with its reason, so that nothing new slips in (``scripts/fuzz`` itself fails
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

# Disagreements that stay: rules the server enforces and JSON Schema cannot state (they
# relate two fields or items, or depend on stored state, the clock or DNS), each named
# with its reason. Every route declares its problem answers (app/api/openapi_contract.py),
# so a status the document does not list is never excused here.
KNOWN_OPEN = {
    # sample columns of one length (JSON Schema cannot relate array lengths); the forms
    # (features or sample, each with its own prediction field) are in the schema
    "POST /api/v1/models/{model}/drift-reports: positive_data_acceptance (422 validation-failed)",
    "POST /api/v1/models/{model}/versions/{version}/reference-profile: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions/{version}/data-checks: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # evidence and confusion matrices: one per (dataset, kind), consistent sizes
    "POST /api/v1/models/{model}/versions/{version}/metrics: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions: positive_data_acceptance (422 validation-failed)",
    # a webhook URL's host must resolve here (the document's example host does not)
    "POST /api/v1/webhooks: positive_data_acceptance (422 validation-failed)",
    # a policy's cross-field rules (metric directions, ranges, monitoring marginal <= pass score)
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 invalid-policy)",
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 validation-failed)",
    # an empty artifact body; a declared digest that does not match the body; a
    # X-Artifact-SHA256 the generator sends against its pattern
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 checksum-mismatch)",  # noqa: E501
    # version lists: ordering by a metric no version recorded is a 400; ordering by a
    # metric needs ?dataset= unless the model names a primary dataset (422)
    "GET /api/v1/models/{model}/versions: positive_data_acceptance (400 bad-request)",
    "GET /api/v1/models/{model}/versions: positive_data_acceptance (422 validation-failed)",
    # serving: a model given twice in ?after= (items unique by their MODEL part); ?wait=
    # without ?after= (OpenAPI cannot make one parameter depend on another)
    "GET /api/v1/models/-/serving: positive_data_acceptance (422 validation-failed)",
    "GET /api/v1/models/{model}/serving: positive_data_acceptance (422 validation-failed)",
    # observations: each time within the retention and the clock skew of now, each version
    # existing; labels: each key observed before (the clock and stored state)
    "POST /api/v1/models/{model}/observations: positive_data_acceptance (422 validation-failed)",
    "POST /api/v1/models/{model}/labels: positive_data_acceptance (422 validation-failed)",
    # ?since= before ?until= (two parameters)
    "GET /api/v1/models/{model}/observations: positive_data_acceptance (422 validation-failed)",
    # a reproduction's lineage must be the version's (stored state); metrics unique by
    # (name, dataset, slice)
    "POST /api/v1/models/{model}/versions/{version}/reproductions: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # reports over observations: ?since= before ?until=; an A/B report's ?a= and ?b= differ
    # (two parameters)
    "GET /api/v1/models/{model}/ab-report: positive_data_acceptance (422 validation-failed)",
    "GET /api/v1/models/{model}/versions/{version}/shadow-report: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # ?at= takes no ?cursor= or ?limit= (two parameters), and is not in the future (the clock)
    "GET /api/v1/models/{model}/history: positive_data_acceptance (400 bad-request)",
    # a rollout's step weights strictly increase (items relate), its strategy fixes the number
    # and weight of steps, its metric names are unique, marginal_score <= pass_score (fields
    # relate)
    "POST /api/v1/models/{model}/rollouts: positive_data_acceptance (422 validation-failed)",
}  # fmt: skip


def is_known(line: str) -> bool:
    """An open disagreement named above."""
    if line in KNOWN_OPEN:
        return True
    # schemathesis itself failed to generate cases for an operation (seen on GET /audit's
    # coverage phase, not every run): no request was judged, so no disagreement was
    # found; scripts/fuzz still fails on it.
    return re.search(r": error in the \w+ phase$", line) is not None


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
