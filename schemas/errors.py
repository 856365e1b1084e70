"""One error type for every layer, so a handler can turn any failure into a clear 4xx/5xx JSON body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure with an HTTP status and a message the caller can act on.

    `detail` carries structured context (the part, the field, the position) so clients do not have to parse
    the message; `retry_after` is set for 429/503 so the response can carry `Retry-After`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        detail: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail or {}
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Decoding runs in worker processes and its errors cross the process boundary by pickle.
        return _rebuild, (type(self), self.status, self.message, self.detail, self.retry_after)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, **({"detail": self.detail} if self.detail else {})}


def _rebuild(cls: type[ApiError], status: int, message: str, detail: dict[str, Any], retry: float | None) -> ApiError:
    return cls(status, message, detail=detail, retry_after=retry)
