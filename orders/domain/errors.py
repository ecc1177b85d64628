"""The desk's error tree. Every error carries a stable wire ``code``, an HTTP status
and ``details``; the API turns any of them into the protocol's envelope
``{code, message, details}``.

    DeskError
    ├── InvalidRequest        400 INVALID_REQUEST     malformed input, a required field missing
    │   ├── PayloadTooLarge   413 INVALID_REQUEST     a body over the size limit
    │   └── UnsupportedMediaType 415 INVALID_REQUEST  a body that is not JSON
    ├── InvalidValue          400 INVALID_VALUE       a field present but not acceptable
    ├── ValidationFailed      400 VALIDATION_ERROR    per-field validator failures
    ├── Unauthorized          401 UNAUTHORIZED        no key / a wrong key
    ├── Forbidden             403 UNAUTHORIZED        a key whose role does not allow the action, a foreign Origin
    ├── NotFound              404 *_NOT_FOUND         ORDER / POSITION / SYMBOL / ALERT
    ├── Conflict              409                     ORDER_NOT_MODIFIABLE, RESET_COOLDOWN
    ├── OrderRejected         422 <reject reason>     INSUFFICIENT_BALANCE, INVALID_QUANTITY, …
    ├── RateLimited           429 RATE_LIMITED        retryable after ``retry_after_seconds``
    ├── Unsupported           501 UNSUPPORTED_OPERATION
    ├── ProviderError         502 PROVIDER_ERROR      the broker answered with something we cannot use
    ├── ProviderUnavailable   503 PROVIDER_UNAVAILABLE the broker cannot be reached (retryable)
    └── DatabaseUnavailable   503 DATABASE_UNAVAILABLE the desk's database cannot be reached, e.g. while it
                                                      restarts (retryable; ``Retry-After`` says when)

Rejections answer with the seed document's codes (``INSUFFICIENT_BALANCE`` …, see
placing-orders.txt) and repeat the reason as ``details.reject_code`` for clients
written against the gateway's ``ORDER_REJECTED``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orders.domain.money import format_decimal


class DeskError(Exception):
    status = 400
    code = "INVALID_REQUEST"
    retryable = False

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidRequest(DeskError):
    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"Invalid request: {reason}", details={"field": field} if field else None)
        self.field = field


class PayloadTooLarge(InvalidRequest):
    status = 413

    def __init__(self, *, max_bytes: int, size: int | None = None) -> None:
        DeskError.__init__(self, f"Invalid request: the body is larger than the {max_bytes} bytes accepted",
                           details={"code": "BODY_TOO_LARGE", "max_bytes": max_bytes, "size": size})


class UnsupportedMediaType(InvalidRequest):
    status = 415

    def __init__(self, content_type: str) -> None:
        content_type = content_type[:100]
        shown = content_type or "none"
        DeskError.__init__(self, f"Invalid request: the body must be JSON (Content-Type: application/json), "
                                 f"not {shown}",
                           details={"code": "UNSUPPORTED_MEDIA_TYPE", "content_type": content_type or None})


class InvalidValue(DeskError):
    code = "INVALID_VALUE"

    def __init__(self, field: str, reason: str, *, provided: Any = None, **extra: Any) -> None:
        details = {"field": field, "provided": _provided_text(provided), **extra}
        super().__init__(f"Invalid value for {field}: {reason}", details=details)
        self.field = field


def _provided_text(provided: Any) -> str | None:
    """The offending value as the wire shows it: decimals in plain notation, never ``0E-8``."""
    if provided is None:
        return None
    return format_decimal(provided) if isinstance(provided, Decimal) else str(provided)


class ValidationFailed(DeskError):
    """Per-field failures, shaped as the gateway's validator map:
    ``{"quantity": [{"code": "must be positive", "message": None, "params": {}}]}``."""

    code = "VALIDATION_ERROR"

    def __init__(self, errors: dict[str, list[dict[str, Any]]]) -> None:
        summary = "; ".join(f"{field}: {e[0]['code']}" for field, e in errors.items())
        super().__init__(f"Validation failed: {summary}", details=errors)


def field_error(code: str, message: str | None = None, **params: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "params": params}


class Unauthorized(DeskError):
    status = 401
    code = "UNAUTHORIZED"

    def __init__(self, reason: str, *, detail_code: str) -> None:
        super().__init__(f"Unauthorized: {reason}", details={"code": detail_code})


class Forbidden(DeskError):
    status = 403
    code = "UNAUTHORIZED"

    def __init__(self, reason: str, *, detail_code: str = "FORBIDDEN") -> None:
        super().__init__(f"Forbidden: {reason}", details={"code": detail_code})


class NotFound(DeskError):
    status = 404


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"Order not found: {order_id}", details={"resource": "order", "id": order_id})


class PositionNotFound(NotFound):
    code = "POSITION_NOT_FOUND"

    def __init__(self, position_id: str) -> None:
        super().__init__(f"Position not found: {position_id}", details={"resource": "position", "id": position_id})


class AlertNotFound(NotFound):
    code = "ALERT_NOT_FOUND"

    def __init__(self, alert_id: str) -> None:
        super().__init__(f"Alert not found: {alert_id}", details={"resource": "alert", "id": alert_id})


class SymbolNotFound(NotFound):
    code = "SYMBOL_NOT_FOUND"

    def __init__(self, symbol: str) -> None:
        super().__init__(f"Symbol not found: {symbol}", details={"symbol": symbol})


class Conflict(DeskError):
    status = 409


class OrderNotModifiable(Conflict):
    code = "ORDER_NOT_MODIFIABLE"

    def __init__(self, order_id: str, reason: str) -> None:
        super().__init__(f"Order cannot be modified: {reason}", details={"order_id": order_id})


class ResetCooldown(Conflict):
    code = "RESET_COOLDOWN"


class OrderRejected(DeskError):
    status = 422
    code = "ORDER_REJECTED"

    def __init__(self, reason: str, message: str, /, **details: Any) -> None:
        super().__init__(message, details={"reject_code": reason, **details}, code=reason)
        self.reason = reason


class RateLimited(DeskError):
    status = 429
    code = "RATE_LIMITED"
    retryable = True

    def __init__(self, *, retry_after_seconds: int | None, reset_at: str | None, **extra: Any) -> None:
        details = {"retry_after_seconds": retry_after_seconds, "reset_at": reset_at, **extra}
        super().__init__("Rate limit exceeded", details=details)


class Unsupported(DeskError):
    status = 501
    code = "UNSUPPORTED_OPERATION"

    def __init__(self, operation: str, provider: str) -> None:
        super().__init__(f"{operation} not supported on {provider}",
                         details={"operation": operation, "provider": provider})


class ProviderError(DeskError):
    status = 502
    code = "PROVIDER_ERROR"

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(f"Provider error: {message}", details={"provider": provider} if provider else None)


class ProviderUnavailable(DeskError):
    status = 503
    code = "PROVIDER_UNAVAILABLE"
    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(f"Provider unavailable: {message}")


class DatabaseUnavailable(DeskError):
    """The desk's own database is out of reach (restarting, failing over, refusing connections) or cannot
    serve the request now. Send it again in a few seconds: the desk reconnects by itself once the database is
    back, and an order sent again with the same ``client_order_id`` is never placed twice."""

    status = 503
    code = "DATABASE_UNAVAILABLE"
    retryable = True
    RETRY_AFTER_SECONDS = 2

    def __init__(self) -> None:
        super().__init__("Database unavailable: the desk cannot reach its database right now; retry in a few "
                         "seconds", details={"retryable": True, "retry_after_seconds": self.RETRY_AFTER_SECONDS})
