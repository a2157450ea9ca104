"""Worker processes started from inside a terminal app.

multiprocessing starts a resource tracker process on first use and hands it the parent's stderr descriptor.
Inside a Textual app sys.stderr is the app's print capture, whose fileno() is -1, and the start fails with
'bad value(s) in fds_to_keep'. spawn_context() starts the tracker with the real stderr first.
"""

from __future__ import annotations

import _thread
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from multiprocessing import resource_tracker

_tracker_lock = threading.Lock()


def spawn_context():
    """multiprocessing's spawn context (fork would copy the OpenMP and UI threads' state), safe in the app."""
    with _tracker_lock:
        saved = sys.stderr
        try:
            if sys.__stderr__ is not None:
                sys.stderr = sys.__stderr__
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved
    return multiprocessing.get_context("spawn")


def exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """Called first thing in a worker process, with the pid of the process that started it (passed along: the
    parent may die before the worker gets here): the worker ends itself once its parent is gone (killed,
    crashed), so no worker outlives the command or the app that started it."""
    def watch() -> None:
        while os.getppid() == parent:  # once re-parented, the parent has died
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def child_of(parent: int) -> None:
    """A worker process's start: it exits when its parent dies, and ignores Ctrl-C, which reaches the whole process
    group: the parent cancels or stops its children itself."""
    exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def starting_children():
    """While worker processes start: Ctrl-C is ignored, a disposition a child keeps from its first instant (the
    terminal sends Ctrl-C to the whole process group, and a child still importing would print a traceback).
    Only the main thread may change it; elsewhere (the app's workers, where no Ctrl-C reaches) nothing changes.
    A Ctrl-C in these few milliseconds is lost: press it again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@contextmanager
def handling(signums: tuple[int, ...], handler):
    """While active, these signals go to `handler`; the handlers before come back after. Only the main thread may
    set handlers: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def sigterm_as_interrupt():
    """While active, SIGTERM ends the work as Ctrl-C does (KeyboardInterrupt), so it stops what it started and
    says so, instead of dying with what it computed unsaved. Either waits for a `whole_write` block to end: a
    journal record cut short, or its lock file left behind, would stall the study for every later run."""
    def interrupt(signum, frame):
        global _interrupt_pending
        if _writing:
            _interrupt_pending = True
            return
        raise KeyboardInterrupt

    return handling((signal.SIGTERM, signal.SIGINT), interrupt)


_writing = 0  # whole_write blocks open in this process
_term_pending = False
_interrupt_pending = False  # a Ctrl-C or SIGTERM that came inside a whole_write block, raised at its end


def sigterm_between_writes() -> None:
    """In a worker process: SIGTERM still ends it at once, unless it is inside a `whole_write` block, which it
    finishes first (a journal record cut short, or its lock file left behind, would stall every other worker)."""
    def on_term(signum, frame) -> None:
        global _term_pending
        if _writing:
            _term_pending = True
        else:
            _end_by(signum)

    signal.signal(signal.SIGTERM, on_term)


def _end_by(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)  # ended by the signal itself: the exit status says so, as before
    os.kill(os.getpid(), signum)


@contextmanager
def whole_write():
    global _writing, _interrupt_pending
    _writing += 1
    try:
        yield
    finally:
        _writing -= 1
        if not _writing and _term_pending:
            _end_by(signal.SIGTERM)
        if not _writing and _interrupt_pending:
            _interrupt_pending = False
            if threading.current_thread() is threading.main_thread():
                raise KeyboardInterrupt
            _thread.interrupt_main()  # the block was another thread's: the interrupt is the main thread's


def owner_tag() -> str:
    """host:pid of this process, as a run directory's claim and a sweep trial name their writer."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(tag: str) -> bool:
    """Whether the process a host:pid tag names has died: only a process of this machine can be told dead; one
    elsewhere, or a tag that is no tag, counts as alive."""
    host, _, pid = tag.strip().rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive, another user's; or no pid at all
        return False
    return zombie(int(pid))


def zombie(pid: int) -> bool:
    """A process that has died but whose parent has not yet collected it (Linux): it runs no more."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
