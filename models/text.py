"""Text that every store can hold: no NUL or other control characters (Postgres refuses NUL in text; the rest
only ever hides data), no lone surrogates (not encodable as UTF-8). Tabs and line breaks are fine."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_ALLOWED_CONTROLS = frozenset("\t\n\r")


def storable(value: str) -> str:
    for char in value:
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"contains a control character (U+{ord(char):04X})")
    return value


def strip_unstorable(value: str) -> str:
    """For audit rows written from untrusted input: keep what can be stored, drop the rest."""
    return "".join(c for c in value if c in _ALLOWED_CONTROLS or unicodedata.category(c) not in ("Cc", "Cs"))


# A free-text note (comments, reasons, references): bounded and storable.
Note = Annotated[str, StringConstraints(max_length=2000), AfterValidator(storable)]
