"""How long a user waits on cancel and on quit during a run, seen from a real terminal.

Starts the installed `digit-workbench` in a pseudo-terminal (as tests/test_terminal.py does), queues the default
configuration (10 rounds x 20 epochs), and once training shows its time left measures:
  cancel: from ctrl+b to the live view saying the run is cancelled;
  quit:   from answering "y" to "Stop it and quit?" to the process's end (the worker thread stopped, the record
          written, nothing left running).
Repeats a few times and prints each figure and the median.

    .venv/bin/python benchmarks/latency.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_terminal import Terminal  # noqa: E402


def timed_session(cwd: Path) -> tuple[float, float]:
    term = Terminal(cwd, 120, 40)
    try:
        term.wait_for("Preset", timeout=60)
        term.press("ctrl+r")
        term.wait_for("time left ~", timeout=120)
        start = time.monotonic()
        term.press("ctrl+b", pause=0.0)
        term.wait_for("(cancelled)", timeout=60)
        cancel = time.monotonic() - start

        term.press("ctrl+r")
        term.wait_for("time left ~", timeout=120)
        return cancel, term.quit_during_a_run()
    finally:
        term.child.close(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="one session: the test suite's run")
    args = parser.parse_args()
    args.repeats = 1 if args.small else args.repeats
    cancels, quits = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cancel, quit_s = timed_session(Path(tmp))
        cancels.append(cancel)
        quits.append(quit_s)
        print(f"session {i + 1}: cancel {cancel:.2f} s (screen polled every 0.2 s), quit {quit_s:.2f} s", flush=True)
    print(f"median over {args.repeats}: cancel {statistics.median(cancels):.2f} s "
          f"({min(cancels):.2f}-{max(cancels):.2f}), quit {statistics.median(quits):.2f} s "
          f"({min(quits):.2f}-{max(quits):.2f})")


if __name__ == "__main__":
    main()
