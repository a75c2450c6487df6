"""Known vulnerabilities in Modelgate's locked runtime dependencies (``scripts/audit-deps``).

``requirements.lock`` pins every package the service needs at run time (the transitive
closure of ``[project].dependencies``, not the dev tools), at the versions installed in
``.venv``. ``scripts/audit-deps --update-lock`` rewrites it from the venv;
``scripts/audit-deps`` checks the lock against the venv and audits it with ``pip-audit``
(the PyPI advisory service, the ``--strict`` collection mode, no dependency resolution:
the lock is already complete).

Exit status:

- 0: no known vulnerability (or only ones listed, with a reason, in
  ``pip-audit-ignore.txt``), or the advisory service could not be reached: then it
  says so loudly (a ``::warning::`` line) and does not fail, because an outage of a
  third-party service is not a defect of this change; the next run audits again;
- 1: a known vulnerability in a locked (or installed) package.

When ``.venv`` holds other versions than the lock (CI installs from ``pyproject.toml``'s
ranges, so a new release can do that), both sets are audited and the difference is
printed as a warning; ``--update-lock`` brings the lock up to date. A failure of
pip-audit itself (not the network) stops the script with a message.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
IGNORE = ROOT / "pip-audit-ignore.txt"
PROJECT = "modelgate"
# Built from this repository (clients/python), not fetched from PyPI: nothing to audit.
LOCAL = frozenset({PROJECT, "modelgate-client"})
HEADER = """\
# Modelgate's runtime dependencies, pinned: the transitive closure of [project].dependencies
# in pyproject.toml at the versions of .venv. Regenerate with `scripts/audit-deps --update-lock`;
# `scripts/audit-deps` audits it for known vulnerabilities (pip-audit).
"""
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|Name or service not known"
    r"|Temporary failure in name resolution|Network is unreachable|timed out|ServiceError"
    r"|Connection refused|SSLError",
)


def closure() -> dict[str, str]:
    """name -> installed version of every runtime dependency of the project."""
    found: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(PROJECT, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = metadata.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        if key not in LOCAL:
            found[key] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return dict(sorted(found.items()))


def render_lock() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in closure().items())


def ignored() -> list[str]:
    """Vulnerability ids accepted on purpose: one per line, ``ID  # why, until when``."""
    if not IGNORE.is_file():
        return []
    ids = []
    for line in IGNORE.read_text(encoding="utf-8").splitlines():
        vuln_id, _, reason = line.partition("#")
        if vuln_id.strip():
            if not reason.strip():
                raise SystemExit(f"audit-deps: {IGNORE.name}: {vuln_id.strip()} needs a reason")
            ids.append(vuln_id.strip())
    return ids


def reachable() -> str | None:
    """None when PyPI's JSON API answers, else why not."""
    try:
        response = httpx.get("https://pypi.org/pypi/pip/json", timeout=15)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def per_release_api() -> bool:
    """Whether PyPI answers per-release JSON (what pip-audit asks); some mirrors and
    proxies serve only the per-project document."""
    try:
        return httpx.get("https://pypi.org/pypi/pip/24.0/json", timeout=15).status_code == 200
    except httpx.HTTPError:
        return False


def project_advisories(pinned: dict[str, str]) -> list[dict[str, Any]]:
    """The fallback: PyPI's per-project JSON lists the advisories of the latest release,
    which audits a pin exactly when it is that release (the others are reported as not
    audited). The same data pip-audit reads, in pip-audit's report shape."""
    packages: list[dict[str, Any]] = []
    with httpx.Client(timeout=15) as http:
        for name, version in pinned.items():
            document = http.get(f"https://pypi.org/pypi/{name}/json")
            if document.status_code != 200:
                packages.append({"name": name, "version": version,
                                 "skip_reason": f"HTTP {document.status_code}"})  # fmt: skip
                continue
            data = document.json()
            latest = data["info"]["version"]
            if latest != version:
                packages.append({"name": name, "version": version,
                                 "skip_reason": f"not the latest release ({latest})"})  # fmt: skip
                continue
            vulns = [
                {"id": v["id"], "aliases": v.get("aliases") or [],
                 "fix_versions": v.get("fixed_in") or [], "description": v.get("details", "")}
                for v in data.get("vulnerabilities") or []
                if v.get("withdrawn") is None and v["id"] not in ignored()
            ]  # fmt: skip
            packages.append({"name": name, "version": version, "vulns": vulns})
    return packages


def warn_unreachable(reason: str) -> int:
    print(
        "::warning::audit-deps: the vulnerability advisory service (PyPI) is unreachable "
        f"({reason}); the dependencies were NOT audited. Run scripts/audit-deps again."
    )
    return 0


def run_pip_audit(requirements: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The audited packages of a requirements file, or (nothing, why the service failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            str(Path(sys.executable).parent / "pip-audit"),
            "--requirement", str(requirements),
            "--no-deps", "--disable-pip", "--strict",
            "--vulnerability-service", "pypi",
            "--format", "json", "--output", str(report),
            "--progress-spinner", "off",
        ]  # fmt: skip
        for vuln_id in ignored():
            command += ["--ignore-vuln", vuln_id]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if report.is_file() and report.read_text(encoding="utf-8").strip():
            packages: list[dict[str, Any]] = json.loads(report.read_text(encoding="utf-8"))[
                "dependencies"
            ]
            return packages, None
    output = (result.stdout + result.stderr).strip()
    if UNREACHABLE.search(output):
        return [], output.splitlines()[-1][:300]
    print(output, file=sys.stderr)
    raise SystemExit(f"audit-deps: pip-audit failed (exit {result.returncode})")


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            found[name.strip()] = version.strip()
    return found


def audit() -> int:
    if not LOCK.is_file():
        print("audit-deps: no requirements.lock: run scripts/audit-deps --update-lock")
        return 1
    locked = LOCK.read_text(encoding="utf-8")
    installed = render_lock()
    sets = [("requirements.lock", LOCK)]
    if installed != locked:
        # CI installs from pyproject.toml's ranges, so a new release can make .venv differ
        # from the lock: audit both, and say how they differ, without failing on that alone.
        a, b = pins(locked), pins(installed)
        drift = sorted(
            f"{n} {a.get(n, '-')} -> {b.get(n, '-')}" for n in a.keys() | b.keys()
            if a.get(n) != b.get(n)
        )  # fmt: skip
        print(
            "::warning::audit-deps: .venv differs from requirements.lock ("
            + "; ".join(drift)
            + "): auditing both; refresh the lock with scripts/audit-deps --update-lock"
        )
        venv_file = Path(tempfile.mkdtemp()) / "installed.txt"
        venv_file.write_text(installed, encoding="utf-8")
        sets.append((".venv", venv_file))
    why = reachable()
    if why is not None:
        return warn_unreachable(why)
    full = per_release_api()
    if not full:
        print(
            "::warning::audit-deps: PyPI does not answer per-release queries from here, so "
            "pip-audit cannot run; using the per-project advisories of each package's latest "
            "release instead (pins that are not the latest are listed as not audited)"
        )
    audited: set[str] = set()
    skipped: set[str] = set()
    findings: set[str] = set()
    for label, path in sets:
        if full:
            packages, why = run_pip_audit(path)
            if why is not None:
                return warn_unreachable(why)
        else:
            packages = project_advisories(pins(path.read_text(encoding="utf-8")))
        for package in packages:
            pin = f"{package['name']}=={package['version']}"
            if package.get("skip_reason"):
                skipped.add(pin)
                print(f"audit-deps: not audited ({label}): {package['name']}: "
                      f"{package['skip_reason']}")  # fmt: skip
            else:
                audited.add(pin)
            for vuln in package.get("vulns", []):
                fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
                aliases = ", ".join(vuln.get("aliases") or [])
                line = (
                    f"VULNERABLE {package['name']}=={package['version']}: {vuln['id']}"
                    f"{f' ({aliases})' if aliases else ''}; fixed in: {fixes}"
                )
                if line not in findings:
                    findings.add(line)
                    print(line)
                    summary = (vuln.get("description") or "").strip().splitlines()
                    if summary:
                        print(f"    {summary[0][:200]}")
    print(
        f"audit-deps: {len(audited)} pinned packages audited, {len(skipped)} not audited, "
        f"{len(findings)} known "
        f"vulnerabilities, {len(ignored())} ignored by {IGNORE.name}"
    )
    return 1 if findings else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--update-lock", action="store_true", help="rewrite requirements.lock from .venv"
    )
    args = parser.parse_args(argv)
    if args.update_lock:
        LOCK.write_text(render_lock(), encoding="utf-8")
        print(f"audit-deps: wrote {LOCK.name} ({len(closure())} packages)")
        return 0
    return audit()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
