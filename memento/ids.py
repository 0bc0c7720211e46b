"""ULID ids: 26 Crockford base32 characters, sortable by creation time."""

from __future__ import annotations

import os
import re
import time

from .errors import InvalidInputError

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 26
MIN_PREFIX = 8
SHORT_LENGTH = 12
_VALID = re.compile(r"^[0-9A-HJKMNP-TV-Z]+$")


def new_id(timestamp_ms: int | None = None) -> str:
    """A new ULID: 48 bits of milliseconds since the epoch, then 80 random bits."""
    ms = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    value = ((ms & ((1 << 48) - 1)) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def normalize_id_prefix(value: object) -> str:
    """Upper-case and check an id or id prefix; raise InvalidInputError when malformed."""
    if not isinstance(value, str):
        raise InvalidInputError(f"memory id must be a string, got {type(value).__name__}")
    text = value.strip().upper()
    if len(text) < MIN_PREFIX:
        raise InvalidInputError(
            f"id {value!r} is too short: give at least {MIN_PREFIX} characters of the id "
            "(see `memento list`)"
        )
    if len(text) > ID_LENGTH or not _VALID.match(text):
        raise InvalidInputError(
            f"{value[:40]!r} is not a memento id: ids are 26 characters of 0-9 and A-Z "
            "(no I, L, O, U); see `memento list`"
        )
    return text
