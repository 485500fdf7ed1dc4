"""Logging setup: repeated lines are rate-limited, so no client can flood the log.

A line is identified by its logger, level and message template (the format string before its
arguments), so "Source x: connection refused" counts as one line whatever the source. Each
may be written `BURST` times per `WINDOW` seconds; what is held back is counted and said with
the next one written after the window.
"""

from __future__ import annotations

from collections import OrderedDict
import logging
import time

BURST = 10
WINDOW = 60.0
MAX_KEYS = 2048


class RepeatFilter(logging.Filter):
    """Lets each kind of line through `burst` times per `window` seconds."""

    def __init__(self, burst: int = BURST, window: float = WINDOW) -> None:
        """Allow `burst` lines of a kind per `window` seconds."""
        super().__init__()
        self.burst = burst
        self.window = window
        # key -> [window start, written in it, held back in it]
        self._seen: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a line over its kind's budget."""
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window:
            held = int(state[2]) if state is not None else 0
            self._seen[key] = [now, 1, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_KEYS:
                self._seen.popitem(last=False)
            if held:
                record.msg = f"{record.msg} [{held} more like this were not logged]"
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


def setup_logging(debug: bool) -> None:
    """Log to stderr with times; repeated lines rate-limited."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    repeat = RepeatFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeat)
