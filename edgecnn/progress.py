"""Progress on the terminal for waits over a couple of seconds: a bar where the amount of
work is known (batches, sweep points, timed calls), and an elapsed-time line with the
current stage where it is not (calibration, the accuracy guard).

Quiet when stderr is not a terminal (a log file gets the plain lines), after `quiet()` (the
commands' --no-progress), and where tqdm is not installed (it comes with the torch extra; a
device with the base install runs without it).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_QUIET = False


def quiet(value: bool = True) -> None:
    """--no-progress: no bars or tickers in this process."""
    global _QUIET
    _QUIET = value


def enabled() -> bool:
    if _QUIET or not sys.stderr.isatty():
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class Bar:
    """A tqdm bar over `total` steps, or nothing when progress is off."""

    def __init__(self, total: int | None, desc: str, unit: str = "it") -> None:
        self.bar: Any = None
        if enabled():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False,
                            dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int = 1, desc: str | None = None) -> None:
        if self.bar is not None:
            if desc is not None:
                self.bar.set_description_str(desc, refresh=False)
            self.bar.update(n)

    def reset(self, total: int) -> None:
        if self.bar is not None:
            self.bar.reset(total=total)

    @property
    def total(self) -> int | None:
        return None if self.bar is None else self.bar.total

    def write(self, line: str) -> None:
        """A log line above the bar (or plainly, without one)."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ticker(Bar):
    """Elapsed time beside the current stage, refreshed twice a second from a daemon thread:
    for work whose length nobody knows in advance. `write(line)` logs a line and makes it
    the stage."""

    def __init__(self, desc: str) -> None:
        super().__init__(None, desc)
        self._stop = threading.Event()
        if self.bar is not None:
            self.bar.bar_format = "{desc} [{elapsed}]"
            threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self.bar.refresh()

    def write(self, line: str) -> None:
        super().write(line)
        if self.bar is not None:
            self.bar.set_description_str(line.removeprefix("edgecnn: ")[:60], refresh=False)

    def close(self) -> None:
        self._stop.set()
        super().close()
