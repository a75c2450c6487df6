"""Modelgate's Python client: submit, promote and download models from a training script.

::

    from modelgate_client import Client

    mg = Client.from_env()  # MODELGATE_URL, MODELGATE_TOKEN
    v = mg.submit("fraud", artifact="model/", metrics={"accuracy": 0.93}, lineage="auto")
    mg.download("fraud", stage="production", dest="model.bin")

Every error is a :class:`ModelgateError` carrying the server's problem document.
"""

__version__ = "0.1.0"

from modelgate_client.client import (  # after __version__: client.py reads it
    Created,
    ModelgateClient,
    ModelgateConnectionError,
    ModelgateError,
    SubmittedVersion,
    all_items,
)

Client = ModelgateClient

__all__ = [
    "Client",
    "Created",
    "ModelgateClient",
    "ModelgateConnectionError",
    "ModelgateError",
    "SubmittedVersion",
    "__version__",
    "all_items",
]
