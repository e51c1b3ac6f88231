"""Turning SIGTERM into Ctrl-C while something must be cleaned up (containers, clusters)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt():
    """CI cancellation and `timeout(1)` send SIGTERM; unwind like Ctrl-C instead, so pytest
    tears the session down and every container / cluster is removed. Only from the main thread,
    and only when nobody else handles SIGTERM already."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
