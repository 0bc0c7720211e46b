"""Stored text shown on a terminal cannot drive the terminal.

Memories are written by agents, and an agent can be steered by anything it reads. Printed
raw, an escape sequence in a memory could clear the screen, retitle the window, recolour or
hide text, or plant an OSC 8 hyperlink to any address. Every human-facing line the CLI
prints about stored data goes through :func:`printable`; JSON output goes through
:func:`json_printable`, which changes the bytes but not the data.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and the C1 controls (U+0080-U+009F): a terminal
# in UTF-8 mode may take U+009B as CSI and U+009D as OSC, exactly like ESC [ and ESC ].
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# json.dumps(ensure_ascii=False) escapes C0 (so ESC becomes \u001b) but passes DEL and C1
# through raw; in JSON they can only occur inside strings, where \uXXXX means the same.
_JSON_RAW = re.compile("[\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character except tab and newline shown as a visible
    ``\\xNN`` escape: ``"\\x1b[2J"`` prints as the six characters ``\\x1b[2J``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def json_printable(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with DEL and the C1
    controls written as ``\\u00XX`` escapes: the same JSON value, safe on a terminal."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
