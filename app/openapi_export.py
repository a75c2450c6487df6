"""Render the OpenAPI description that ``openapi/openapi.json`` commits.

``scripts/export-openapi`` writes the file with this module and ``tests/test_openapi.py``
compares the file with :func:`render_openapi`, so the two can never format it apart.
Building the application touches no database and no artifact store (those are opened
by the lifespan, which does not run here).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT_PATH = Path("openapi") / "openapi.json"


def render_openapi() -> str:
    """The spec as stable text: two-space indent, sorted keys, one trailing newline."""
    from app.main import create_app
    from app.settings import Settings

    # Defaults, not the environment or a .env file: the committed spec describes the
    # code, whatever the machine that exports it has configured.
    settings = Settings.model_construct()
    spec = create_app(settings).openapi()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        sys.stderr.write("usage: python -m app.openapi_export [PATH]\n")
        return 2
    target = Path(argv[0]) if argv else DEFAULT_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_openapi(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
