"""Errors threadline raises, each rendered as OpenAI's error envelope.

    ThreadlineError                      500  api_error
    ├── InvalidRequestError              400  invalid_request_error
    │   ├── RunNotWaitingError           400  (submit_tool_outputs to a run not waiting)
    │   └── ThreadBusyError              400  (thread has an active run)
    ├── AuthenticationError              401  invalid_request_error / invalid_api_key
    ├── NotFoundError                    404  invalid_request_error
    ├── MethodNotAllowedError            405  invalid_request_error
    ├── RequestTooLargeError             413  invalid_request_error
    └── ConflictError                    409  invalid_request_error (lost a compare-and-set)

Services raise these; one handler in ``threadline.app`` turns them into
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ThreadlineError(Exception):
    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(ThreadlineError):
    status_code = 400
    error_type = "invalid_request_error"

    @classmethod
    def bad_cursor(cls, kind: str, cursor: str, param: str) -> InvalidRequestError:
        return cls(
            f"Invalid '{param}': no {kind} with id '{cursor}' in this list.",
            param=param,
            code="invalid_cursor",
        )


class ThreadBusyError(InvalidRequestError):
    @classmethod
    def for_thread(cls, thread_id: str, run_id: str | None) -> ThreadBusyError:
        """The thread has an active run (``None``: it had one a moment ago)."""
        run = f" {run_id}" if run_id is not None else ""
        return cls(f"Thread {thread_id} already has an active run{run}.", param="thread_id")


class RunNotWaitingError(InvalidRequestError):
    pass


class AuthenticationError(ThreadlineError):
    status_code = 401
    error_type = "invalid_request_error"


class NotFoundError(ThreadlineError):
    status_code = 404
    error_type = "invalid_request_error"

    @classmethod
    def for_object(cls, kind: str, object_id: str, param: str | None = None) -> NotFoundError:
        if kind == "file":  # the Files API kept its own wording
            return cls(f"No such File object: {object_id}", param=param or "id")
        return cls(f"No {kind} found with id '{object_id}'.", param=param)


class MethodNotAllowedError(ThreadlineError):
    status_code = 405
    error_type = "invalid_request_error"


class RequestTooLargeError(ThreadlineError):
    status_code = 413
    error_type = "invalid_request_error"


class ConflictError(ThreadlineError):
    status_code = 409
    error_type = "invalid_request_error"


class NotReadyError(ThreadlineError):
    """A backing service (database, event bus, queue) cannot be reached."""

    status_code = 503
    error_type = "service_unavailable"
