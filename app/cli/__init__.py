"""The ``modelgate`` command and the Python client it is built on."""
