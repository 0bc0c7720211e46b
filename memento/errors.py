"""Errors raised by memento.

Every error memento raises on purpose derives from :class:`MementoError`, and every
message says what is wrong and what to do next. The CLI prints the message on one line
and exits 1; the MCP server returns it to the client as an error result.

    MementoError
    ├── InvalidInputError      a value passed in is not acceptable (also a ValueError)
    ├── NotFoundError          no memory has that id (also a KeyError-like LookupError)
    ├── AmbiguousIdError       an id prefix matches more than one memory
    ├── DatabaseError          the file cannot be opened, read or written
    │   └── SchemaError        the file was made by a newer memento, or is not a memento file
    ├── ModelError             the embedding model is missing, damaged or cannot be fetched
    ├── ModelMismatchError     stored vectors were made by another model: run `memento reembed`
    └── AccessError            the client's token does not allow it (read-only, or bound to
                               another project; the HTTP server, memento.memory.tokens)
"""

from __future__ import annotations


class MementoError(Exception):
    """Base class of every error memento raises on purpose."""


class InvalidInputError(MementoError, ValueError):
    """An argument is not acceptable (empty content, unknown kind, importance out of range...)."""


class NotFoundError(MementoError, LookupError):
    """No memory matches the id or id prefix."""


class AmbiguousIdError(MementoError, LookupError):
    """An id prefix matches several memories; a longer prefix is needed."""


class DatabaseError(MementoError):
    """The database file cannot be opened, read or written."""


class SchemaError(DatabaseError):
    """The database schema is not one this version of memento can use."""


class ModelError(MementoError):
    """The embedding model cannot be loaded (missing files, checksum mismatch, offline hub)."""


class ModelMismatchError(MementoError):
    """The stored vectors were made by a different model or dimension than the current one."""


class AccessError(MementoError):
    """The bearer token of the client does not allow the call: a write with a read-only
    token, or a project other than the token's own."""
