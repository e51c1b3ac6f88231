"""Deterministic waiting: poll a condition until it holds, a hopeless state shows, or the
deadline passes — and say what is pending, with the elapsed time, while it lasts.

Polling has an interval; nothing here sleeps a fixed time hoping the cluster is ready.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
PENDING_SHOWN = 3  # items of a progress line: enough to see what differs, short enough to read


def elapsed_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Progress lines that show through pytest's output capture: written by the terminal
    reporter (or stderr on xdist workers, which have no terminal) with capture suspended,
    the way pytest's own live logging does it."""

    def __init__(self, config=None, stream=None, heartbeat: float = 15.0, clock=time.monotonic):
        self.config = config
        self.stream = stream
        self.heartbeat = heartbeat
        self.clock = clock
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        text = f"[dhi-cilium] {text}"
        with self._lock:
            if self.config is None:
                print(text, file=self.stream or sys.__stderr__, flush=True)
                return
            capman = self.config.pluginmanager.getplugin("capturemanager")
            reporter = self.config.pluginmanager.getplugin("terminalreporter")
            worker = getattr(self.config, "workerinput", None) is not None
            suspended = capman.global_and_fixture_disabled() if capman else _nothing()
            with suspended:
                if reporter is not None and not worker:
                    reporter.write_line(text)
                else:
                    print(text, file=self.stream or sys.__stderr__, flush=True)

    @contextmanager
    def step(self, what: str):
        """``what ...`` now, ``still what (45s)`` every heartbeat, ``what: done in 1m03s``."""
        start = self.clock()
        stop = threading.Event()

        def beat():
            while not stop.wait(self.heartbeat):
                self.line(f"still {what} ({elapsed_text(self.clock() - start)})")

        self.line(f"{what} ...")
        thread = threading.Thread(target=beat, daemon=True, name="dhi-cilium-progress")
        thread.start()
        try:
            yield
        except BaseException:
            stop.set()
            self.line(f"{what}: failed after {elapsed_text(self.clock() - start)}")
            raise
        finally:
            stop.set()
            thread.join()
        self.line(f"{what}: done in {elapsed_text(self.clock() - start)}")


@contextmanager
def _nothing():
    yield


@dataclass
class WaitResult(Generic[T]):
    ok: bool
    elapsed: float
    state: T | None = None  # the last observation
    pending: list[str] = field(default_factory=list)
    hopeless: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"converged after {elapsed_text(self.elapsed)}"
        if self.hopeless:
            return f"stopped after {elapsed_text(self.elapsed)}: {self.hopeless}"
        return f"gave up after {elapsed_text(self.elapsed)}; still pending: {listing(self.pending, 5)}"


def listing(items: list[str], shown: int) -> str:
    """The first ``shown`` items and how many more there are."""
    more = len(items) - shown
    return "; ".join(items[:shown]) + (f" (+{more} more)" if more > 0 else "")


def wait_for(observe: Callable[[], T], pending: Callable[[T], list[str]], *, deadline: float,
             what: str, progress: Progress, hopeless: Callable[[T], str] = lambda s: "",
             interval: float = 2.0, report_every: float = 10.0,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> WaitResult[T]:
    """Poll ``observe`` until ``pending(state)`` is empty (ok), ``hopeless(state)`` names a
    reason to stop, or ``deadline`` seconds pass."""
    start = last_report = clock()
    progress.line(f"waiting for {what} (up to {elapsed_text(deadline)})")
    while True:
        state = observe()
        left, stop = pending(state), hopeless(state)
        elapsed = clock() - start
        if not left:
            progress.line(f"{what}: converged after {elapsed_text(elapsed)}")
            return WaitResult(True, elapsed, state)
        if stop or elapsed >= deadline:
            result = WaitResult(False, elapsed, state, left, stop)
            progress.line(f"{what}: {result.describe()}")
            return result
        if clock() - last_report >= report_every:
            last_report = clock()
            progress.line(f"{what}: {elapsed_text(elapsed)} elapsed, {len(left)} pending: {listing(left, PENDING_SHOWN)}")
        sleep(max(0.0, min(interval, deadline - elapsed)))


def hold_for(observe: Callable[[], T], broken: Callable[[T], list[str]], *, window: float, what: str,
             progress: Progress, interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> WaitResult[T]:
    """The settle window: keep observing for ``window`` seconds; stop at the first breakage
    (a restart, a pod no longer Ready) instead of waiting the window out."""
    start = clock()
    progress.line(f"{what}: observing for {elapsed_text(window)}")
    while True:
        state = observe()
        problems = broken(state)
        elapsed = clock() - start
        if problems:
            progress.line(f"{what}: broke after {elapsed_text(elapsed)}: {problems[0]}")
            return WaitResult(False, elapsed, state, problems, problems[0])
        if elapsed >= window:
            progress.line(f"{what}: held for {elapsed_text(elapsed)}")
            return WaitResult(True, elapsed, state)
        sleep(max(0.0, min(interval, window - elapsed)))
