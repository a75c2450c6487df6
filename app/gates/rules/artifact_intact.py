"""``artifact_intact``: the stored artifact exists and its sha256 matches the recorded one."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from app.gates.facts import Facts
from app.gates.result import RuleResult
from app.gates.rules.base import RuleConfig


class ArtifactRule(RuleConfig):
    kind: Literal["artifact_intact"]
    deep: bool = Field(
        default=False,
        description="Always re-hash the bytes, even where the store keeps a SHA-256 checksum "
        "of the object (content is verified either way).",
    )

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        artifact = facts.candidate.artifact
        if not artifact.uploaded or artifact.sha256 is None:
            return artifact_intact(
                rule=name,
                present=False,
                sha256_expected=artifact.expected_sha256,
                sha256_observed=None,
                detail="no artifact has been uploaded for this version",
            )
        result = facts.verify_artifact(deep=self.deep)
        # sha256_observed is only ever a digest that was computed or read from the store.
        return artifact_intact(
            rule=name,
            present=result.present,
            sha256_expected=artifact.sha256,
            sha256_observed=result.sha256_observed,
            detail=f"{result.method}: {result.detail}",
        )


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _normalise_digest(digest: str | None) -> str | None:
    if digest is None:
        return None
    text = digest.strip().lower()
    text = text.removeprefix("sha256:")
    return text if _SHA256_HEX.fullmatch(text) else None


def artifact_intact(
    *,
    rule: str,
    present: bool,
    sha256_expected: str | None,
    sha256_observed: str | None,
    detail: str | None = None,
) -> RuleResult:
    """The stored artifact must exist and hash to the sha256 recorded at upload.

    Digests compare case-insensitively and may carry a ``sha256:`` prefix. A
    missing or malformed digest on either side fails: an artifact that cannot be
    verified is not known to be intact. ``detail`` (e.g. a storage error) is
    appended to the reason.
    """
    expected = _normalise_digest(sha256_expected)
    observed_digest = _normalise_digest(sha256_observed)
    observed = {
        "present": bool(present),
        "sha256_expected": sha256_expected,
        "sha256_observed": sha256_observed,
        "detail": detail,
    }
    if not present:
        reason = "the artifact is missing from storage"
        passed = False
    elif sha256_expected is None:
        reason, passed = "no sha256 was recorded for the artifact", False
    elif expected is None:
        reason, passed = f"the recorded sha256 {sha256_expected!r} is not a sha256 digest", False
    elif sha256_observed is None:
        reason, passed = "the artifact's sha256 was not computed", False
    elif observed_digest is None:
        reason, passed = f"the computed sha256 {sha256_observed!r} is not a sha256 digest", False
    elif expected != observed_digest:
        reason = (
            f"sha256 mismatch: recorded {expected}, stored artifact hashes to {observed_digest}"
        )
        passed = False
    else:
        reason, passed = f"artifact present, sha256 {expected} matches", True
    if detail:
        reason = f"{reason} ({detail})"
    return RuleResult(rule, "artifact_intact", passed, reason, observed)
