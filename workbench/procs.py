"""Worker processes started from inside a terminal app.

multiprocessing starts a resource tracker process on first use and hands it the parent's stderr descriptor.
Inside a Textual app sys.stderr is the app's print capture, whose fileno() is -1, and the start fails with
'bad value(s) in fds_to_keep'. spawn_context() starts the tracker with the real stderr first.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading

_tracker_lock = threading.Lock()


def spawn_context():
    """multiprocessing's spawn context (fork would copy the OpenMP and UI threads' state), safe in the app."""
    from multiprocessing import resource_tracker

    with _tracker_lock:
        saved = sys.stderr
        try:
            if sys.__stderr__ is not None:
                sys.stderr = sys.__stderr__
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved
    return multiprocessing.get_context("spawn")
