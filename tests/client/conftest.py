"""The live server and tokens of the CLI tests serve the client package's tests too."""

from tests.cli.conftest import admin, live_server, model, server_settings, tokens

__all__ = ["admin", "live_server", "model", "server_settings", "tokens"]
