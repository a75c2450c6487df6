"""Serving with several processes: gunicorn as the process manager, uvicorn workers."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from app.main import create_app

        return create_app()


def run_gunicorn(*, host: str, port: int, workers: int, log_level: str) -> None:
    _Application(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "uvicorn_worker.UvicornWorker",
            "loglevel": log_level,
            "graceful_timeout": 75,  # past the longest long poll (wait <= 60 s)
            "timeout": 120,
            "keepalive": 75,
        }
    ).run()
