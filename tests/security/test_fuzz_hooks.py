"""The fuzz driver's schemathesis hooks: ``ast.parse`` safe across schemathesis's workers.

CPython 3.11 (before 3.11.9) fails a parse with "AST constructor recursion depth
mismatch" when two threads at different stack depths parse at once; schemathesis's
coverage phase did that now and then (hypothesis parses predicate sources in each worker
thread), and the fuzz test failed on ``GET /audit/export`` for no fault of the API.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from app.openapi_export import render_openapi

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "scripts" / "fuzz_hooks.py"

# Two threads at different stack depths parse the same source, switching as often as the
# interpreter allows, with a garbage-collector callback that runs Python code (a switch
# point inside the C conversion of the tree). Without the hooks this ends in the
# SystemError on CPython 3.11.7 within a few hundred parses.
RACE = """
import ast, gc, os, sys, threading
if os.environ.get("SCHEMATHESIS_HOOKS"):
    from schemathesis.core.hooks import load_from_env
    load_from_env()
sys.setswitchinterval(1e-6)
gc.set_threshold(50, 2, 2)
gc.callbacks.append(lambda phase, info: sum(range(50)))
source = "f = lambda x: not g(x) and (a + b * c - d) or [1, 2, (3, 4)]\\n" * 20
errors = []
def work(depth):
    if depth:
        return work(depth - 1)
    for _ in range(3000):
        try:
            ast.parse(source)
        except SystemError as exc:
            errors.append(str(exc))
            return
threads = [threading.Thread(target=work, args=(depth,)) for depth in (5, 40)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors[0] if errors else "no error")
"""


def test_fuzz_driver_loads_the_hooks_into_schemathesis() -> None:
    spec = importlib.util.spec_from_file_location("fuzz_driver", HOOKS.with_name("fuzz.py"))
    assert spec is not None
    assert spec.loader is not None
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    env = driver.schemathesis_env()
    assert env["SCHEMATHESIS_HOOKS"] == str(HOOKS)
    assert HOOKS.is_file()


def test_parsing_in_two_threads_does_not_fail_with_the_hooks() -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    done = subprocess.run(
        [sys.executable, "-c", RACE], capture_output=True, text=True, env=env, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "no error", done.stdout


def test_the_driver_lets_a_documented_long_poll_take_its_time() -> None:
    """A serving watch may hold for the document's largest ``wait``; schemathesis's
    max_response_time check (10 s by default) failed a 304 that came after 59 s."""
    spec = importlib.util.spec_from_file_location("fuzz_driver", HOOKS.with_name("fuzz.py"))
    assert spec is not None
    assert spec.loader is not None
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    options = driver.timing_options()
    document = json.loads(render_openapi())
    waits = [
        parameter["schema"]["maximum"]
        for operations in document["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "wait"
    ]
    assert waits
    for flag in ("--request-timeout", "--max-response-time"):
        assert float(options[options.index(flag) + 1]) > max(waits), flag
