"""Errors shared by every layer."""

from __future__ import annotations


class FileRejected(Exception):
    """The file as a whole cannot be used: empty, corrupt, unknown format, no header, ...

    ``message`` says what is wrong and how to fix it, in words a supplier understands;
    ``row`` is the spreadsheet row it concerns (1 = the header) when there is one.
    """

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


class RelationshipError(ValueError):
    """A change to retailers, connections, credentials, connectors or lookups that is refused.

    The message says what is wrong and what to do instead; nothing was changed.
    """
