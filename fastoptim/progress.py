"""A one-line progress bar on stderr."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """``bar.advance()`` per unit of work; redraws at most ten times a second.

    Draws only on a terminal, so logs and pipes stay clean.
    """

    def __init__(self, total: int, label: str = "", width: int = 30, stream=None) -> None:
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.visible = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self._drawn_at = 0.0

    def advance(self, label: str | None = None, amount: int = 1) -> None:
        self.done = min(self.done + amount, self.total)
        if label is not None:
            self.label = label
        now = time.monotonic()
        if self.visible and (now - self._drawn_at >= 0.1 or self.done == self.total):
            self._draw()
            self._drawn_at = now

    def close(self) -> None:
        if not self.visible:
            return
        self.stream.write("\r" + " " * (self.width + len(self.label) + 12) + "\r")
        self.stream.flush()

    def _draw(self) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        percent = 100 * self.done // self.total
        self.stream.write(f"\r[{bar}] {percent:3d}% {self.label}")
        self.stream.flush()
