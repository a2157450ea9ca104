"""The `digit-workbench` command's first instant. Its signal handlers go in before any other import, so that a
Ctrl-C or SIGTERM while the command starts (numpy, rich and the records load in about 0.3 s) ends it with one line
and exit status 130, never a traceback from the import machinery or a silent death by signal."""

import os
import signal
import sys

INTERRUPTED = 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C, from the first moment (the README's promise)
    try:
        from workbench.cli.entry import main as command  # late by design: the handlers above go first
    except KeyboardInterrupt:
        print("digit-workbench: interrupted while starting: nothing was done", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # at once: an import cut short can leave the interpreter set to end by the signal instead of this status
        os._exit(INTERRUPTED)
    try:
        code = command()
    except KeyboardInterrupt:  # between the command's own handlers
        print("digit-workbench: interrupted", file=sys.stderr)
        code = INTERRUPTED
    # done: a signal from here on would only turn the exit status into a death by signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code
