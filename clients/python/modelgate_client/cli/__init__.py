"""The ``modelgate`` command line (client commands; the server adds its own, see main)."""
