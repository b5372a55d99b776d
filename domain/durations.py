"""Durations as the business writes them in rules: 30m, 4h, 2d, 1w."""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DELAY = timedelta(days=90)  # the longest wait or "time after" a rule may ask for

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """'30m', '4h', '2d', '1w' → timedelta; at least a minute, at most MAX_DELAY."""
    found = _DURATION.match(str(text))
    if found is None:
        raise ValueError(f"{text!r} is not a duration (write it like 30m, 4h, 2d or 1w)")
    delta = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if delta < timedelta(minutes=1) or delta > MAX_DELAY:
        raise ValueError(f"{text!r} must be between 1 minute and {MAX_DELAY.days} days")
    return delta
