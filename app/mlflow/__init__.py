"""The MLflow model-registry REST API (``/api/2.0/mlflow/...``) over Modelgate's services.

Unmodified MLflow clients register, read, search and transition models here; every call
goes through the same services, authorisation, gates and audit log as ``/api/v1``.
"""
