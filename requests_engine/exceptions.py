"""The engine's one family of errors: every job raises these, and every surface maps them to a response
(a form error, a message, HTTP 400 or 409) in one place."""

from __future__ import annotations


class RequestEngineError(Exception):
    """An action was refused: the message says why, in words a coordinator or controller understands."""


class UploadRefused(RequestEngineError):
    """An upload was refused; the message names the file and says why."""


class BulkAnswersRefused(RequestEngineError):
    """Nothing was applied; `problems` says what to fix, one line each, naming the file, folder or line."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class ForwardingError(RequestEngineError):
    """A forward was refused; the message says why in words the member understands."""


class ControllerImportError(RequestEngineError):
    """The import file cannot be used at all; the message is one line and says why."""


class StatementMissing(RequestEngineError):
    """An answer lacks a statement the law asks of it (an erasure's Art 19 recipients); `field` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class Art15ItemsRefused(RequestEngineError):
    """The Art 15 items given with an answer cannot be recorded (unknown items, or not an access request)."""
