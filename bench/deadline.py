"""A hard stop for a benchmark run: whatever hangs, clean up and exit."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def hard_deadline(seconds: float, cleanup: Callable[[], None], name: str) -> Iterator[None]:
    """After `seconds`, run `cleanup` (stop servers, kill children), say so on stderr and exit 3."""

    def fire(_signum: int, _frame: FrameType | None) -> None:
        cleanup()
        sys.stderr.write(f"{name}: hard deadline of {seconds:.0f}s passed; stopped everything\n")
        os._exit(3)

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
