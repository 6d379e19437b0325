"""The aimass error tree, shared by the server's services and the SDK.

Services raise these; ``aimass.api.errors`` maps each to one HTTP status, and
the SDK raises the same classes from the server's answers.
"""

from __future__ import annotations


class AimassError(Exception):
    """Base of every error aimass raises on purpose; ``message`` is safe to show a user."""

    code = "error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(AimassError):
    """The request is malformed or names something that cannot be used (400)."""

    code = "invalid_input"
    status = 400


class Unprocessable(InvalidInput):
    """The request parses, but its content is not acceptable (422)."""

    code = "unprocessable"
    status = 422


class Unauthenticated(AimassError):
    """No token, or a token that is unknown or revoked (401)."""

    code = "unauthenticated"
    status = 401


class Forbidden(AimassError):
    """The token is valid but its role does not allow this (403)."""

    code = "forbidden"
    status = 403


class NotFound(AimassError):
    """The named thing does not exist (404)."""

    code = "not_found"
    status = 404


class Conflict(AimassError):
    """The thing already exists, or its state forbids this (409)."""

    code = "conflict"
    status = 409


class TooLarge(AimassError):
    """The body or a member of it is over the configured limit (413)."""

    code = "too_large"
    status = 413


class StaleLeadership(Conflict):
    """A write as leader by a holder whose leader epoch is no longer current; nothing changed."""

    code = "stale_leadership"


class Unavailable(AimassError):
    """A part the request needs is missing or down right now; say how to fix it (503).

    ``retry_after`` (seconds) is set when the part is expected back on its own (the
    database restarting); HTTP answers carry it as ``Retry-After``.
    """

    code = "unavailable"
    status = 503

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(Unavailable):
    """The metadata database cannot be reached right now (503 with ``Retry-After``)."""


class InsufficientStorage(AimassError):
    """A store has no space left for the bytes; the message names the store (507)."""

    code = "insufficient_storage"
    status = 507


class Overloaded(AimassError):
    """Too much work is queued or every slot is taken; retry after ``retry_after`` s (429)."""

    code = "overloaded"
    status = 429

    def __init__(self, message: str, retry_after: int = 1, reason: str = "queue_full") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: Why, as the rejection metric's label: ``queue_full`` or ``queue_wait``.
        self.reason = reason


class ChecksumMismatch(AimassError):
    """Stored bytes do not match their recorded checksum (500, never user-caused).

    Its wire code stays ``integrity_error``; the class was called ``IntegrityError``
    until that name kept meeting SQLAlchemy's.
    """

    code = "integrity_error"
    status = 500


ERRORS_BY_CODE: dict[str, type[AimassError]] = {
    cls.code: cls
    for cls in (
        AimassError,
        InvalidInput,
        Unprocessable,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        TooLarge,
        Unavailable,
        InsufficientStorage,
        Overloaded,
        ChecksumMismatch,
    )
}

#: The old name, kept so that SDK users' ``except IntegrityError`` still works.
IntegrityError = ChecksumMismatch
