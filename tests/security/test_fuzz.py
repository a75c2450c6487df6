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
body). Any other disagreement fails this test unless it is one of :data:`KNOWN_OPEN`:
the server-side rules the schema does not state yet, each named, so that nothing new
slips in while they are closed one by one (``scripts/fuzz`` itself fails on them).

About 4,500 cases in 2-3 minutes with an admin token. ``MODELGATE_FUZZ_EXAMPLES`` and
``MODELGATE_FUZZ_SEED`` change the size and the cases; ``scripts/fuzz`` runs 10,000 and
more with a token of every role.
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

# Disagreements still open: the server enforces a rule the document does not state, or
# accepts what it declares invalid. Remove an entry when its rule is in the schema.
KNOWN_OPEN = {
    # either features or sample; sample columns of one length (JSON Schema cannot say it)
    "POST /api/v1/models/{model}/drift-reports: positive_data_acceptance (422 validation-failed)",
    "POST /api/v1/models/{model}/versions/{version}/reference-profile: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    # evidence and confusion matrices: one per (dataset, kind), consistent sizes
    "POST /api/v1/models/{model}/versions/{version}/metrics: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "POST /api/v1/models/{model}/versions: positive_data_acceptance (422 validation-failed)",
    # pydantic's lax mode takes false for 0 and 0 for false
    "POST /api/v1/models/{model}/versions/{version}/metrics: negative_data_rejection (200 Schema-violating request accepted)",  # noqa: E501
    "PUT /api/v1/models/{model}/drift-settings: negative_data_rejection (200 Schema-violating request accepted)",  # noqa: E501
    "PUT /api/v1/models/{model}/policy: negative_data_rejection (200 Schema-violating request accepted)",  # noqa: E501
    # a webhook URL's host must resolve here (the document's example host does not)
    "POST /api/v1/webhooks: positive_data_acceptance (422 validation-failed)",
    # a policy's cross-field rules (metric directions, ranges)
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 invalid-policy)",
    "PUT /api/v1/models/{model}/policy: positive_data_acceptance (422 validation-failed)",
    # an empty artifact body; a declared digest that does not match the body; a
    # X-Artifact-SHA256 the generator sends against its pattern
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 validation-failed)",  # noqa: E501
    "PUT /api/v1/models/{model}/versions/{version}/artifact: positive_data_acceptance (422 checksum-mismatch)",  # noqa: E501
    # version lists: ordering by a metric no version recorded is a 400; combinations of
    # filter and order parameters the server refuses (422) are not stated in the schema
    "GET /api/v1/models/{model}/versions: positive_data_acceptance (400 bad-request)",
    "GET /api/v1/models/{model}/versions: positive_data_acceptance (422 validation-failed)",
    # a rejection needs a comment that says something (blank is refused)
    "POST /api/v1/promotions/{promotion_id}/reject: positive_data_acceptance (422 validation-failed)",  # noqa: E501
}  # fmt: skip

# Endpoints merged on 2026-12-03 whose server-side rules are not reconciled with the
# document yet (issue 20 stays open on them): aliases and the serving plan (slugs,
# MODEL:REVISION, 304 on an unchanged plan, 307 from an alias to its version), the
# observations and labels (a batch checked whole against versions and clocks),
# reproductions, data checks, the artifact scrub, and the 400 for an unknown query
# parameter, which the routes do not declare yet. Any disagreement elsewhere still fails.
NOT_YET_RECONCILED = (
    "/api/v1/models/{model}/aliases",
    "/api/v1/models/-/serving",
    "/api/v1/models/{model}/serving",
    "/api/v1/models/{model}/versions/@{alias}",
    "/api/v1/models/{model}/observations",
    "/api/v1/models/{model}/labels",
    "/api/v1/models/{model}/versions/{version}/reproductions",
    "/api/v1/models/{model}/versions/{version}/data-checks",
    "/api/v1/artifacts/scrub",
)
UNDECLARED_UNKNOWN_QUERY = "status_code_conformance (400 bad-request)"


def is_known(line: str) -> bool:
    """An open disagreement named above (one entry, or an endpoint not reconciled yet)."""
    if line in KNOWN_OPEN or line.endswith(UNDECLARED_UNKNOWN_QUERY):
        return True
    if re.search(r": error in the \w+ phase$", line):
        # schemathesis itself failed to generate cases for an operation (seen on GET
        # /audit's coverage phase, not every run): no request was judged, so no
        # disagreement was found; scripts/fuzz still fails on it.
        return True
    _, _, rest = line.partition(" ")
    path = rest.split(":", 1)[0]
    return any(path == p or path.startswith(p + "/") for p in NOT_YET_RECONCILED)


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
