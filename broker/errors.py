"""Errors of the broker, and how each is shown to an HTTP client.

    BrokerError
    ├── ApiError                   rendered as the contract's JSON error by broker.app's middleware
    │   ├── InvalidRequest         400 invalid_request, with a ``fields`` map
    │   │   └── RefusedSearch      a search refused once its subject was read: the audit still hashes the child
    │   ├── Unauthenticated        401 unauthenticated
    │   ├── Forbidden              403 forbidden
    │   ├── NotFound               404 not_found
    │   ├── RateLimited            429 rate_limited (Retry-After)
    │   ├── NoNodesReachable       503 unavailable
    │   ├── Overloaded             503 overloaded (Retry-After)
    │   ├── LimitsUnavailable      503 limits_unavailable (Retry-After): the shared limits store is unreachable
    │   └── NotReady               503 not_ready: /readyz, with a ``fields`` map naming what is unusable
    └── NodeCallError              one authority could not be asked (broker.rpc_errors translates grpc errors)
        ├── NodeTimeout            no answer before the deadline
        ├── NodeUnavailable        not reachable
        ├── NodeRefused            TLS identity wrong, or the node refused us
        ├── NodeFailed             the node answered with an error or a malformed answer
        └── NodeCircuitOpen        not asked: its circuit breaker is open

Messages are shown to callers and logged: they must never contain a child's details.
"""

from __future__ import annotations

from aiohttp import web

from core.subject import Subject


class BrokerError(Exception):
    """Base of every broker error."""


class ApiError(BrokerError):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class RefusedSearch(InvalidRequest):
    """A search refused (a name that is no name, the minimum query, the justification) after every subject
    field was read as valid: the audit entry of the refusal can still carry the child's hashes, so a
    subject access request finds attempts too. ``subject`` is never logged or rendered."""

    def __init__(self, message: str, *, fields: dict[str, str], subject: Subject) -> None:
        super().__init__(message, fields=fields)
        self.subject = subject


class Unauthenticated(ApiError):
    status, code = 401, "unauthenticated"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class RateLimited(ApiError):
    """``limit`` names the limit reached (``practitioner_per_minute``, ``organisation_per_day``...)."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, limit: str = "") -> None:
        super().__init__(message, headers=headers)
        if limit:
            self.extra = {"limit": limit}


class NoNodesReachable(ApiError):
    status, code = 503, "unavailable"


class Overloaded(ApiError):
    """More searches under way than the broker admits: refuse at once rather than queue."""

    status, code = 503, "overloaded"


class LimitsUnavailable(ApiError):
    """The limits store (Redis, shared by replicas) cannot be reached: the search is refused, not made unlimited.

    Fail closed: the limits and the unusual-volume alert are what stand between one certificate and a
    trawl of every child's contacts, and the service already refuses searches it cannot audit.
    """

    status, code = 503, "limits_unavailable"


class NotReady(ApiError):
    """The broker cannot take searches now (audit store, registry or keys unusable): see broker.readiness."""

    status, code = 503, "not_ready"


def http_status(exc: Exception) -> int:
    """The status broker.app's error middleware answers ``exc`` with; the search audit records the same."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return 400  # the contract's invalid_request, not 413
    if isinstance(exc, web.HTTPException):
        return exc.status
    return 500


class NodeCallError(BrokerError):
    """An authority that could not be asked; ``reason`` is the coverage reason shown to the searcher."""

    reason = "error"


class NodeTimeout(NodeCallError):
    reason = "timeout"


class NodeUnavailable(NodeCallError):
    reason = "unavailable"


class NodeRefused(NodeCallError):
    reason = "refused"


class NodeFailed(NodeCallError):
    reason = "error"


class NodeCircuitOpen(NodeCallError):
    """Not asked: the node failed repeatedly and its circuit is open until a probe succeeds."""

    reason = "circuit_open"
