"""Text from servers and from files made elsewhere, made safe to show.

A server's reply, and a results file from another CI run, may hold characters that steer
a terminal rather than show: ESC starts the sequences that recolour, retitle or clear it
(and, in some terminals, write files or open links), CR rewrites the line before it, and
Unicode's direction marks reorder what is shown around them.
"""

from __future__ import annotations

import re

#: C0 and C1 controls but newline and tab, DEL, Unicode's line and paragraph separators,
#: and the marks that change the direction of the text around them.
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab written as an escape
    (ESC as ``\\x1b``), so that printing it shows it and does nothing else."""
    return _CONTROLS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
