"""MLflow's error shape, ``{"error_code", "message"}``, and the codes Modelgate answers."""

from __future__ import annotations

from app.errors import (
    AppError,
    Conflict,
    Forbidden,
    ModelAlreadyExists,
    NotFound,
    Unauthenticated,
)

STATUS_OF_CODE = {
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "INVALID_PARAMETER_VALUE": 400,
    "INVALID_STATE": 400,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "ENDPOINT_NOT_FOUND": 404,
    "FEATURE_DISABLED": 400,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}


class MlflowApiError(Exception):
    """An error answered in MLflow's shape; raised inside the MLflow routes so the
    request's unit of work rolls back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS_OF_CODE.get(self.code, 400)

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


def invalid(message: str) -> MlflowApiError:
    return MlflowApiError("INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> MlflowApiError:
    return MlflowApiError("RESOURCE_DOES_NOT_EXIST", message)


def from_app_error(error: AppError) -> MlflowApiError:
    """The MLflow error for a Modelgate domain error, keeping its message."""
    message = str(error)
    if isinstance(error, ModelAlreadyExists):
        return MlflowApiError("RESOURCE_ALREADY_EXISTS", message)
    if isinstance(error, NotFound):
        return not_found(message)
    if isinstance(error, Unauthenticated):
        return MlflowApiError("UNAUTHENTICATED", message)
    if isinstance(error, Forbidden):
        return MlflowApiError("PERMISSION_DENIED", message)
    if isinstance(error, Conflict):
        return MlflowApiError("INVALID_STATE", message)
    if error.status >= 500:
        return MlflowApiError(
            "TEMPORARILY_UNAVAILABLE" if error.status == 503 else "INTERNAL_ERROR", message
        )
    return invalid(message)
