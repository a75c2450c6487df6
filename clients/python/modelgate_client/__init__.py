"""Modelgate's Python client (the serving router lives in :mod:`modelgate_client.router`)."""
