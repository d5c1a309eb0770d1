"""Progress on the terminal for waits over a couple of seconds: a bar where the amount of
work is known (batches, sweep points, timed calls), and an elapsed-time line with the
current stage where it is not (calibration, the accuracy guard).

Quiet when stderr is not a terminal (a log file gets the plain lines) and after `quiet()`
(the commands' --no-progress). tqdm draws the bars where it is installed (it comes with the
torch extra); a device with the base install gets a minimal one-line ticker instead, so that
no wait there is silent either. Lines logged while a bar is up go through `write`, above it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

_QUIET = False
_ACTIVE: list[Bar] = []  # bars on screen now, innermost last: `write` goes above them


def quiet(value: bool = True) -> None:
    """--no-progress: no bars or tickers in this process."""
    global _QUIET
    _QUIET = value


def enabled() -> bool:
    return not _QUIET and sys.stderr.isatty()


def write(line: str) -> None:
    """Print a log line on stderr without running into a bar that is on screen."""
    if _ACTIVE:
        Bar.write(_ACTIVE[-1], line)
    else:
        print(line, file=sys.stderr)


class _Plain:
    """The part of tqdm's interface that Bar uses, drawn as one rewritten stderr line: for
    the base install, which has no tqdm."""

    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.bar_format: str | None = None
        self._t0 = self._drawn = time.monotonic()
        self._lock = threading.Lock()
        self.refresh()

    def _line(self) -> str:
        s = int(time.monotonic() - self._t0)
        elapsed = f"{s // 60:02d}:{s % 60:02d}"
        if self.bar_format is not None:
            return f"{self.desc} [{elapsed}]"
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        return f"{self.desc}: {count} {self.unit} [{elapsed}]"

    def refresh(self) -> None:
        with self._lock:
            sys.stderr.write("\r\x1b[K" + self._line()[:119])
            sys.stderr.flush()
            self._drawn = time.monotonic()

    def clear(self) -> None:
        with self._lock:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._drawn > 0.2:  # a few redraws a second at most
            self.refresh()

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc
        if refresh:
            self.refresh()

    def reset(self, total: int | None = None) -> None:
        self.total, self.n = total, 0
        self.refresh()

    def write(self, line: str, file: Any = None) -> None:
        self.clear()
        print(line, file=sys.stderr)
        self.refresh()

    def close(self) -> None:
        self.clear()


class Bar:
    """A bar over `total` steps (tqdm, or a plain ticker without it), or nothing when
    progress is off."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", *,
                 show: bool = True) -> None:
        self.bar: Any = None
        if not (show and enabled()):  # show=False: a silent stand-in for callers without one
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar = _Plain(total, desc, unit)
        else:
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False,
                            dynamic_ncols=True, file=sys.stderr)
        _ACTIVE.append(self)

    def _tick(self) -> None:
        """Redraw twice a second from a daemon thread, so the elapsed time moves while a
        stage counts no steps (loading, the machine's peak, calibration)."""
        if self.bar is None or hasattr(self, "_stop"):
            return
        self._stop = threading.Event()

        def run(bar: Any, stop: threading.Event) -> None:
            while not stop.wait(0.5):
                bar.refresh()

        threading.Thread(target=run, args=(self.bar, self._stop), daemon=True).start()

    def update(self, n: int = 1, desc: str | None = None) -> None:
        if self.bar is not None:
            if desc is not None:
                self.bar.set_description_str(desc, refresh=False)
            self.bar.update(n)

    def stage(self, desc: str) -> None:
        """Say what is being done now (loading, warm-up, ...), before any step is counted."""
        if self.bar is not None:
            self.bar.set_description_str(desc, refresh=True)
            self._tick()

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
        if hasattr(self, "_stop"):
            self._stop.set()
        if self.bar is not None:
            self.bar.close()
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            self.bar = None

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
        if self.bar is not None:
            self.bar.bar_format = "{desc} [{elapsed}]"
            self._tick()

    def write(self, line: str) -> None:
        super().write(line)
        if self.bar is not None:
            self.bar.set_description_str(line.removeprefix("edgecnn: ")[:60], refresh=False)
