"""The API's errors: one base, one subclass per problem type, each knowing its status and type URI."""

from __future__ import annotations

from minewatch.errors import MinewatchError

PROBLEM_BASE = "https://minewatch.dev/problems/"


class ApiError(MinewatchError):
    """Base of every error the API raises on purpose; rendered as application/problem+json."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}

    @property
    def type_uri(self) -> str:
        """The stable `type` of the problem document."""
        return PROBLEM_BASE + self.slug


class BadRequest(ApiError):
    """The request is malformed in a way that is not a field validation (generic 400)."""

    status, slug, title = 400, "bad-request", "Bad request"


class BadCursor(ApiError):
    """A pagination cursor that this server did not issue for this list, or that was altered."""

    status, slug, title = 400, "bad-cursor", "Invalid pagination cursor"


class Unauthorized(ApiError):
    """No token, an unknown token or a revoked one."""

    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="minewatch"'})


class Forbidden(ApiError):
    """The resource is visible to the caller, but its role may not do this."""

    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ApiError):
    """Nonexistent, or outside the caller's scope: the two are indistinguishable on purpose."""

    status, slug, title = 404, "not-found", "Not found"


class Conflict(ApiError):
    """The action is not allowed in the resource's current state."""

    status, slug, title = 409, "conflict", "Conflict"


class Invalid(ApiError):
    """The request is well-formed but its content is not acceptable (validation)."""

    status, slug, title = 422, "validation", "Validation failed"


class Unavailable(ApiError):
    """A dependency (the database) cannot be reached right now."""

    status, slug, title = 503, "unavailable", "Service unavailable"
