"""Loaded into the ``schemathesis run`` process by ``scripts/fuzz.py`` (``SCHEMATHESIS_HOOKS``).

``ast.parse`` is made one call at a time. CPython 3.11 (before 3.11.9) keeps the depth
counter of its AST-to-object conversion per interpreter, not per thread, and checks at the
end that it is back where the call started (which depends on the calling thread's stack
depth). Hypothesis parses the source of the predicates it is given (``.filter``, lambda
descriptions) while it builds strategies, and schemathesis builds them in ``--workers``
threads; when the interpreter switches threads inside one conversion (a garbage
collection running Python code is enough) and the other thread parses meanwhile, the
first ends with "SystemError: AST constructor recursion depth mismatch" and schemathesis
reports an error for whatever operation it was generating (seen on ``GET /audit/export``,
``GET /audit`` and ``GET /webhooks``: their string query parameters get such filters). No
schema construct causes it and no document change prevents it; one parse at a time does.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

_parse = ast.parse
_lock = threading.RLock()


def _serialised_parse(*args: Any, **kwargs: Any) -> Any:
    with _lock:
        return _parse(*args, **kwargs)


if getattr(ast.parse, "__name__", "") != _serialised_parse.__name__:
    ast.parse = _serialised_parse
