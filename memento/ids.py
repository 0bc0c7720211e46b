"""ULID ids: 26 Crockford base32 characters, sortable by creation time."""

from __future__ import annotations

import os
import re
import threading
import time

from .errors import InvalidInputError

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 26
MIN_PREFIX = 8
SHORT_LENGTH = 12
_VALID = re.compile(r"^[0-9A-HJKMNP-TV-Z]+$")


# The short id listings show is the first 12 characters: 48 bits of milliseconds and 10
# random bits (26 characters carry 130 bits for a 128-bit ULID, so the first holds only 3).
# Memories stored in one batch share the millisecond, and 10 random bits alone would
# collide (1,000 ids in one millisecond: a collision is all but certain). So within a
# process those first 58 bits always increase: a new id takes max(its own, the last one +
# 1). 1,024 ids fit in a millisecond before the time part runs ahead (by 1 ms per 1,024
# ids, so ids stay sorted by creation). Two processes writing in the same millisecond
# still differ there with probability 1023/1024, and ids stay unique in full (80 random
# bits in all).
_HEAD_BITS = 58
_TAIL_BITS = 128 - _HEAD_BITS
_last_head = 0
_head_lock = threading.Lock()


def new_id(timestamp_ms: int | None = None) -> str:
    """A new ULID: 48 bits of milliseconds since the epoch, then 80 random bits, of which
    the first 10 make the 12-character short id unique within a process (see above). An
    explicit ``timestamp_ms`` (an import's creation time) is used as it is."""
    global _last_head
    random = int.from_bytes(os.urandom(10), "big")
    if timestamp_ms is None:
        ms = int(time.time() * 1000) & ((1 << 48) - 1)
        head = (ms << 10) | (random >> _TAIL_BITS)
        with _head_lock:
            head = max(head, _last_head + 1) & ((1 << _HEAD_BITS) - 1)
            _last_head = head
        value = (head << _TAIL_BITS) | (random & ((1 << _TAIL_BITS) - 1))
    else:
        value = ((int(timestamp_ms) & ((1 << 48) - 1)) << 80) | random
    return encode_ulid(value)


def encode_ulid(value: int) -> str:
    """A 128-bit number as a ULID's 26 Crockford base32 characters (the first carries only
    3 bits)."""
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
            f"id {value!r} is too short: give the {SHORT_LENGTH}-character id that listings "
            f"show (at least {MIN_PREFIX} characters; see `memento list`)"
        )
    if len(text) > ID_LENGTH or not _VALID.match(text):
        raise InvalidInputError(
            f"{value[:40]!r} is not a memento id: ids are 26 characters of 0-9 and A-Z "
            "(no I, L, O, U); see `memento list`"
        )
    return text
