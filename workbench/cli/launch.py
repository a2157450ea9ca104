"""The `digit-workbench` command's first instant. Its signal handlers go in before any other import, so that a
Ctrl-C or SIGTERM while the command starts (numpy, rich and the records load in about 0.3 s) ends it with one line
and exit status 130, never a traceback from the import machinery or a silent death by signal."""

import os
import signal
import sys

INTERRUPTED = 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _while_starting(signum, frame):
    """Nothing is done yet, so the command ends here and now. Raising instead could land in the import machinery's
    own callbacks, where Python prints the exception as "ignored" and the import, and the command, go on."""
    os.write(2, b"digit-workbench: interrupted while starting: nothing was done\n")
    os._exit(INTERRUPTED)


def main() -> int:
    signal.signal(signal.SIGINT, _while_starting)
    signal.signal(signal.SIGTERM, _while_starting)  # as Ctrl-C, from the first moment (the README's promise)
    from workbench.cli.entry import main as command  # late by design: the handlers above go first

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = command()
    except KeyboardInterrupt:  # between the command's own handlers
        print("digit-workbench: interrupted", file=sys.stderr)
        code = INTERRUPTED
    # done: a signal from here on would only turn the exit status into a death by signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code
