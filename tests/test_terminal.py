"""The installed digit-workbench in a real pseudo-terminal, driven by keys and read through a terminal emulator.

A Pilot has no terminal: in a real one the app's standard streams are not file descriptors, signals and child
processes are real, and keys arrive as escape sequences. These tests see what a user sees."""

import csv
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest
from proctools import alive, children_of
from sweep_specs import tiny_spec_text

from workbench.cli.entry import main

KEYS = {"enter": "\r", "tab": "\t", "down": "\x1b[B", "up": "\x1b[A", "escape": "\x1b", "f1": "\x1bOP", "f2": "\x1bOQ",
        "f3": "\x1bOR", "f4": "\x1bOS", "ctrl+r": "\x12", "ctrl+t": "\x14", "ctrl+l": "\x0c", "ctrl+b": "\x02",
        "ctrl+o": "\x0f", "ctrl+u": "\x15", "ctrl+e": "\x05", "ctrl+q": "\x11", "ctrl+p": "\x10", "end": "\x1b[F",
        "shift+tab": "\x1b[Z", "delete": "\x1b[3~"}


def test_every_key_the_tests_press_reaches_textual_as_that_key():
    from textual._xterm_parser import XTermParser  # how the app decodes what a terminal sends (private: tests only)

    for name, sequence in KEYS.items():
        parser = XTermParser()
        keys = [event.key for event in [*parser.feed(sequence), *parser.feed("")]]
        assert keys == [name], (name, sequence, keys)


def installed_command() -> str:
    found = shutil.which("digit-workbench", path=str(Path(sys.executable).parent)) or shutil.which("digit-workbench")
    if found is None:
        pytest.fail("digit-workbench is not installed (make test installs it)")
    return found


class Terminal:
    """A pseudo-terminal of cols x rows running the command; `text` is what the screen shows."""

    def __init__(self, cwd: Path, cols: int, rows: int, env: dict | None = None):
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        env = dict(os.environ, TERM="xterm-256color", DIGIT_WORKBENCH_RUNS=str(cwd / "runs"), **(env or {}))
        self.child = pexpect.spawn(installed_command(), [], dimensions=(rows, cols), env=env, cwd=str(cwd))

    def pump(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return

    @property
    def text(self) -> str:
        return "\n".join(self.screen.display)

    def press(self, *keys: str, pause: float = 0.15) -> None:
        for key in keys:
            self.child.send(KEYS.get(key, key))
            self.pump(pause)

    @property
    def views_text(self) -> str:
        """The views' side of a wide screen (right of the form's border) as one line, spaces squeezed: a legend
        that wraps, as one of long names does when the runs in view change, reads whole."""
        return " ".join(" ".join(line.rsplit("▎", 1)[-1].split()) for line in self.screen.display)

    def wait_for(self, fragment: str, timeout: float = 60.0, gone: bool = False, wrapped: bool = False) -> None:
        """Until `fragment` shows (or, with `gone`, no longer shows) on the screen; `wrapped`: anywhere in the
        views' side read as one line."""
        deadline = time.monotonic() + timeout
        shown = (lambda: fragment in self.views_text) if wrapped else (lambda: fragment in self.text)
        while shown() if gone else not shown():
            if time.monotonic() > deadline or not self.child.isalive():
                raise AssertionError(f"{fragment!r} never {'went' if gone else 'appeared'}; the screen:\n{self.text}")
            self.pump(0.2)

    def wait_until(self, done, what: str, timeout: float = 60.0) -> None:
        """Until done() holds (a file the app writes), the screen kept up to date meanwhile."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline or not self.child.isalive():
                raise AssertionError(f"{what} never happened; the screen:\n{self.text}")
            self.pump(0.2)
        self.pump(1.0)

    def quit_during_a_run(self, timeout: float = 60.0) -> float:
        """ctrl+q during a run, "y" to the question; the seconds from the answer to the process's end."""
        self.press("ctrl+q")
        self.wait_for("Stop it and quit?")
        asked = time.monotonic()
        self.press("y", pause=0.0)
        self.child.expect(pexpect.EOF, timeout=timeout)
        return time.monotonic() - asked

    def quit_idle(self) -> int:
        """ctrl+q with nothing running: the app ends at once; its exit status."""
        self.press("ctrl+q")
        self.child.expect(pexpect.EOF, timeout=10)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def terminal(tmp_path):
    opened = []

    def open_terminal(cols=120, rows=40, env=None):
        term = Terminal(tmp_path, cols, rows, env)
        opened.append(term)
        term.wait_for("digits: embedded", timeout=60)
        return term

    yield open_terminal
    for term in opened:
        term.close()


def load_preset(term: Terminal, downs: int, name: str) -> None:
    """The preset picker has the focus at start: open it, go down to the preset, take it."""
    term.press("enter", *["down"] * downs, "enter", pause=0.2)
    term.wait_for(f"{name} · paper")


def test_a_session_in_a_real_terminal(terminal, tmp_path):
    term = terminal(120, 40)
    load_preset(term, 4, "table2-fcn-ws")  # the paper's order: basic, fcn-plain, fcn-aux, fcn-ws
    term.press("ctrl+r")
    term.wait_for("table2-fcn-ws: done", timeout=120)
    term.wait_for("test ")

    term.press("ctrl+r")  # again, and cancel it: it is kept, as cancelled
    term.wait_for("running: table2-fcn-ws")
    term.press("ctrl+b")
    # the live view says "cancelled" at once; this notice comes once the run's record is in the results table
    term.wait_for("partial history is kept", timeout=30)

    term.press("f3")
    term.wait_for("status")
    assert term.text.count("table2-fcn-ws") >= 2
    term.press("ctrl+o")
    term.wait_for("runs written to")
    rows = list(csv.DictReader((tmp_path / "runs-export.csv").open()))
    assert sorted(r["status"] for r in rows) == ["cancelled", "done"]

    term.press("enter", pause=0.5)  # the results table has the keyboard: a run's details
    term.wait_for("Load into form (l)")
    term.press("e", pause=0.5)  # what it gets wrong (the cancelled run has no predictions: it says so)
    term.wait_for("error % by digit pair" if "done" in term.text else "no test predictions")
    term.press("c", pause=0.3)
    term.press("l", pause=0.5)
    term.wait_for("form loaded from table2-fcn-ws")

    term.press("f3", " ", "down", " ", "c", pause=0.3)  # mark both runs, compare them
    term.wait_for("Paired (p)")
    term.press("p", pause=0.3)
    term.wait_for("a − b")
    term.press("escape", pause=0.4)
    term.wait_for("Paired (p)", gone=True)

    term.press("ctrl+p", pause=0.4)  # the palette, then the key panel, closed by escape
    term.press(*"keys", pause=0.1)
    term.press("enter", pause=0.6)
    term.wait_for("Queue the form")
    term.press("escape", pause=0.4)
    term.wait_for("Queue the form", timeout=10, gone=True)  # escape closed the key panel

    # Table II's queue: its eight rows train together (as `table` trains them), overlaid in the live view;
    # ctrl+b asks which run to cancel, and "all of them" stops them all
    term.press("ctrl+t")
    term.wait_for("running together (8)")
    term.press("f2")
    term.wait_for("time left ~", timeout=180)
    term.press("ctrl+b")
    term.wait_for("Cancel which run?")
    term.press("end", "enter")
    term.wait_for("queue empty", timeout=60)
    records = {r["name"]: r["status"] for r in
               (json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/summary.json"))
               if r["name"].startswith("table2-") and r["name"] != "table2-fcn-ws"}
    assert len(records) == 7  # (table2-fcn-ws ran earlier too)
    assert set(records.values()) <= {"done", "cancelled"} and "cancelled" in records.values()
    assert "(cancelled)" in term.text  # the legend says so

    # a sweep with two worker processes starts from inside the app (it failed in a real terminal) and cancels
    choose_sweep_spec(term, 3, "Table III: the FCN grid search")  # beyond-cnn, beyond-fcn, table3-fcn
    count = min(2, os.cpu_count() or 1)  # one worker per core at most
    term.press("tab", str(count), "tab", "tab", "enter", pause=0.3)
    term.wait_for(f"running {count} worker(s)", timeout=60)
    workers = [pid for pid in children_of(term.child.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == count
    journal = tmp_path / "runs" / "sweeps" / "table3-fcn.journal"
    # the study is on disk before it is stopped (on failure: which journals there are, and the screen)
    term.wait_until(journal.exists, f"{journal} written (journals: {list(tmp_path.rglob('*.journal'))})")
    term.press("ctrl+b")
    term.wait_for("cancelled: start again", timeout=30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        term.pump(0.2)
    assert not any(alive(pid) for pid in workers)
    assert journal.exists(), (list(tmp_path.rglob("*.journal")), term.text)
    term.press("escape", pause=0.5)

    # quit during a run: asked first, then out within two seconds, leaving no process behind
    term.press("ctrl+r")
    term.wait_for("running: table2-fcn-ws")
    took = term.quit_during_a_run(timeout=10)
    term.child.close()
    # it ends, not hangs (benchmarks/latency.py times it: 1.4-1.9 s; this is not a timing test)
    assert term.child.exitstatus == 0 and took < 10, took


def test_a_run_at_80_by_24(terminal, tmp_path):
    term = terminal(80, 24)
    term.wait_for("Seed")  # the whole form on the first screen, no scrolling
    assert "f1 f2 f3 f4 views" in term.text.splitlines()[-1]  # the four as one footer item, never cut off
    load_preset(term, 4, "table2-fcn-ws")
    term.press("ctrl+r")
    term.wait_for("table2-fcn-ws: done", timeout=120)
    summaries = list((tmp_path / "runs").glob("*/summary.json"))
    assert len(summaries) == 1
    term.press("f3")
    term.wait_for("test acc %")
    row = next(line for line in term.text.splitlines() if line.startswith(" table2-fcn-ws"))
    assert "done" in row and "±" in row  # status and the whole score within 80 columns
    term.press("f1")
    term.wait_for("Batch size")
    assert term.quit_idle() == 0


def test_the_form_the_footer_and_the_sweep_screen_at_80_by_24(terminal, tmp_path):
    """Issue 22, items 6, 8 and 9 where a user sees them: a field's error stays in its cell, the footer has no stray
    text, a refusal names the field's label, the sweep screen offers only its own keys."""
    term = terminal(80, 24)
    term.wait_for("Seed")
    footer = term.text.splitlines()[-1]
    assert "palettep" not in footer and "^r Run" in footer
    term.press(*["tab"] * 6, "ctrl+u", "x")  # to HL, a bad value
    term.wait_for("expected a whole")
    lines = term.text.splitlines()
    hl = next(i for i, line in enumerate(lines) if line.startswith(" HL"))
    assert "KL" in lines[hl] and "expected a whole" in lines[hl + 1]  # KL beside HL, the error under HL
    assert lines[hl + 1].index("expected") < lines[hl].index("KL")  # in HL's column, not spilling into KL's
    assert any(line.startswith(" BC") and " K " in line for line in lines[hl + 1:])  # BC and K as they were
    term.press("ctrl+r")
    term.wait_for("fix HL first")
    term.press("f4")
    term.wait_for("choose a sweep spec")
    term.wait_for("Back")  # the sweep screen's own footer
    footer = term.text.splitlines()[-1]
    assert "f1 Form" not in footer and "^r Run" not in footer
    term.press("ctrl+r", "ctrl+t")
    term.pump(0.5)
    assert "choose a sweep spec" in term.text and not (tmp_path / "runs").exists()  # nothing queued unseen
    term.press("escape")
    term.wait_for("queue empty")
    assert term.quit_idle() == 0


TINY_SPEC = tiny_spec_text("Tiny: two stages for the terminal test", rounds=1, epochs=4, pairs=200, batch_size=5,
                           validation_pairs=100, alpha_trials=3)


def choose_sweep_spec(term: Terminal, downs: int, title: str) -> None:
    """f4, open the spec list, go down to a spec, take it, and see its own title. The downs wait for the list to
    be drawn: pressed while it opened, one was lost once (beyond-fcn instead of table3-fcn, whose title
    "Table III" the first matched too)."""
    term.press("f4")
    term.wait_for("choose a sweep spec")
    term.press("enter")
    term.wait_for("table4-cnn")  # the open list
    term.press(*["down"] * downs, "enter", pause=0.3)
    term.wait_for(title)


def open_tiny_sweep(term: Terminal) -> None:
    """The user's own spec: listed after the four shipped ones, with its folder."""
    choose_sweep_spec(term, 5, "Tiny: two stages")


def start_sweep(term: Terminal, workers: int) -> None:
    term.press("tab", "ctrl+u", str(workers), "tab", "tab", "enter", pause=0.3)
    term.wait_for(f"running {workers} worker(s)", timeout=60)


@pytest.mark.parametrize("cols, rows", [(120, 40), (80, 24)])
def test_a_sweep_cancelled_quit_and_resumed_finishes_every_point_once(terminal, tmp_path, cols, rows):
    """Issue 22, items 1 and 5 where a user met them: start, cancel, start again, quit during it; in a new app the
    same sweep continues and finishes, with no traceback over the screen and no worker failed."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tiny.toml").write_text(TINY_SPEC)
    env = {"DIGIT_WORKBENCH_SWEEP_SPECS": str(specs)}
    workers = min(2, os.cpu_count() or 1)
    term = terminal(cols, rows, env)
    open_tiny_sweep(term)
    footer = term.text.splitlines()[-1]  # the sweep screen's own keys, not the hidden form's
    assert "Cancel sweep" in footer and "f1 Form" not in footer and "^r Run" not in footer, footer
    start_sweep(term, workers)
    term.press("escape", pause=0.5)  # the main screen says a sweep trains, never "queue empty"
    term.wait_for("sweep tiny running")
    assert "queue empty" not in term.text
    term.press("f4", pause=0.5)
    term.pump(0.5)  # into the first trials
    term.press("ctrl+b")
    term.wait_for("cancelled: start again", timeout=30)
    term.press("enter", pause=0.3)  # Start again: the button still has the focus
    term.wait_for(f"running {workers} worker(s)", timeout=60)
    term.pump(1.0)
    term.press("ctrl+q")
    term.wait_for("Stop its workers and quit?")
    term.press("y", pause=0.0)
    term.child.expect(pexpect.EOF, timeout=30)
    term.child.close()
    assert term.child.exitstatus == 0

    term = terminal(cols, rows, env)  # the same study, continued
    open_tiny_sweep(term)
    start_sweep(term, workers)
    def kept_finals(status: str | None = None) -> list[dict]:
        found = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/summary.json")]
        return [f for f in found if status is None or f["status"] == status]

    term.wait_until(lambda: len(kept_finals("done")) == 2, "the final measurement of both stages", timeout=300)
    term.wait_for("Sweep tiny")  # the notification of its end
    screen = term.text
    assert "Traceback" not in screen and "failed" not in screen and "ended with an error" not in screen, screen
    assert "best validation" in screen or rows < 40  # the plot's title, fitted to it (80x24 leaves no room)
    def trials_header() -> int | None:
        return next((i for i, line in enumerate(term.text.splitlines()) if "state" in line and "worker" in line),
                    None)

    for _ in range(10):  # at 80x24 the trials table is below the plots: Tab reaches it, and it scrolls into view
        if trials_header() is not None:
            break
        term.press("tab", pause=0.3)
    screen, header = term.text, trials_header()
    lines = screen.splitlines()
    assert header is not None, screen
    assert header < rows - 2 and any("complete" in line for line in lines[header + 1:]), screen  # rows in view
    status = next(line for line in lines if "searched in" in line)
    assert not status.rstrip().endswith("…"), status  # the status line whole, under the buttons
    log = tmp_path / "runs" / "sweeps" / "tiny-workers.log"
    assert not log.exists() or "Traceback" not in log.read_text(), log.read_text()
    trials = list(csv.DictReader((tmp_path / "runs" / "sweeps" / "tiny-trials.csv").open()))
    complete = [(t["hl"], t["c_hl"]) for t in trials if t["stage"] == "1" and t["state"] == "complete"]
    assert sorted(complete) == sorted((h, c) for h in ("8", "16") for c in ("4", "8"))  # every point, once
    assert sum(t["stage"] == "2" and t["state"] == "complete" for t in trials) == 3
    assert not any(t["state"] == "running" for t in trials)
    finals = kept_finals("done")
    assert sorted(f["name"] for f in finals) == ["tiny after alpha", "tiny after widths"]
    # when the first app got as far as the final measurement before it quit, what it measured is kept, cancelled
    assert all(f["status"] == "cancelled" for f in kept_finals() if f["status"] != "done")
    assert term.quit_idle() == 0


@pytest.mark.parametrize("cols, rows", [(120, 40), (80, 24)])
def test_what_a_new_user_tripped_on_holds_in_a_real_terminal(terminal, tmp_path, cols, rows):
    """Issue 22, items 2, 3, 4, 7, 10 and 11 where a user met them, at both sizes: pairs the digits cannot supply
    are refused in the form; a run cancelled at once does not read 100 %; plot titles show; a sorted column shows
    its arrow; the per-digit accuracy is whole; the compare screen exports its figure."""
    narrow = cols < 100
    term = terminal(cols, rows)
    term.press(*["tab"] * 16, pause=0.1)  # to Pairs
    term.pump(1.0)  # the field selects its text once focused: typing before that would be partly replaced
    term.press("ctrl+u", *"5000", pause=0.1)
    term.wait_for("distinct digits")
    term.press("ctrl+r")
    term.wait_for("fix Pairs first")
    assert not (tmp_path / "runs").exists()  # nothing queued, nothing failed
    term.press("ctrl+u", *"1000", pause=0.1)
    term.wait_for("distinct digits", gone=True)

    term.press("ctrl+p", pause=0.4)  # the palette loads a preset wherever the focus is
    term.press(*"table2-fcn-ws-aux", pause=0.05)
    term.press("enter", pause=0.5)
    term.wait_for("table2-fcn-ws-aux · paper")
    term.press("ctrl+r")
    term.wait_for("running: table2-fcn-ws-aux")
    term.press("ctrl+b")
    term.wait_for("cancelled", timeout=30)
    term.press("f2") if narrow else None
    term.pump(0.5)
    assert "100%" not in term.text  # cancelled at once: the bar says how far it got
    term.press("ctrl+r")
    term.wait_for("table2-fcn-ws-aux: done", timeout=120)
    term.press("f2") if narrow else None
    term.wait_for("train loss: mean ± std over rounds")
    if not narrow:  # at 80 columns the notifications of the last runs cover the right plot's title a while
        term.wait_for("accuracy %: mean ± std over rounds")

    term.press("f3")
    term.wait_for("status")
    term.press("s", pause=0.4)  # sort by the next column: its header shows the arrow
    assert "▲" in term.text or "▼" in term.text
    term.press("up", "up", pause=0.2)  # to the top row: a finished run (cancelled ones sort last)
    for _ in range(2):  # the done run's details (the cancelled one has no predictions)
        term.press("enter", pause=0.5)
        term.wait_for("Load into form (l)")
        term.press("e", pause=0.3)
        deadline = time.monotonic() + 15  # the predictions are read off the UI thread
        while not any(t in term.text for t in ("error % by digit pair", "no test predictions")) and \
                time.monotonic() < deadline:
            term.pump(0.2)
        if "error % by digit pair" in term.text:
            break
        term.press("escape", "down", pause=0.4)
    term.wait_for("error % by digit pair")
    if not narrow:  # item 10 is the 120x40 view; at 80x24 notifications may cover its right half a while
        term.wait_for("per-digit accuracy")
    if not narrow:  # at 80x24 the details scroll; at 120x40 every digit is in view
        for digit in range(10):
            assert f"{digit}: " in term.text.split("per-digit accuracy")[1], digit
    term.press("escape", pause=0.5)
    term.press("f3", "up", "up", " ", "down", " ", "c", pause=0.4)  # mark both runs, compare them
    term.wait_for("Paired (p)")
    term.wait_for("test accuracy")  # the curves' titles, fitted to their plots
    term.wait_for("train loss")
    term.press("e", pause=0.4)
    term.press("x", pause=0.4)
    term.press("ctrl+e", pause=0.5)  # the figure of what is on screen
    term.wait_for("figure written to")
    assert len(list(tmp_path.rglob("comparison-*.png"))) == 1
    term.press("escape", pause=0.4)
    assert term.quit_idle() == 0


def test_a_lab_notebook_in_a_real_terminal(terminal, tmp_path):
    """Issue 19 where a user meets it: one preset queued with three alphas gives three names in the legend, the
    results and the compare screen; the filter finds a setting's value; a run is tagged and noted; three runs
    compared show what differs and Holm p; the scatter view plots them; two runs deleted, one brought back."""
    term = terminal(120, 40)
    term.press("ctrl+p", pause=0.4)
    term.press(*"table2-fcn-ws-aux", pause=0.05)
    term.press("enter", pause=0.5)
    term.wait_for("table2-fcn-ws-aux · paper")

    def type_into(tabs: int, text: str, back: bool = False) -> None:
        term.press(*["shift+tab" if back else "tab"] * tabs, pause=0.1)
        term.pump(0.6)  # the field selects its text once focused
        term.press("ctrl+u", *text, pause=0.05)

    # from the preset picker: alpha 5 tabs on, then epochs, rounds and pairs; then Tags, last in the form
    type_into(5, "0.2")
    type_into(8, "1")  # epochs
    type_into(2, "2")  # rounds
    type_into(1, "200")  # pairs
    type_into(6, "alphas")  # tags: seed, shift, rotate, device, name, tags
    term.press("ctrl+r", pause=0.0)  # at once: the run queued is the form as typed (test_keys_in_order)
    term.wait_for("━━ table2-fcn-ws-aux α 0.2 epochs 1", wrapped=True)  # the live view's legend names each run
    type_into(17, "0.5", back=True)  # back to alpha
    term.press("ctrl+r", pause=0.0)
    term.wait_for("━━ table2-fcn-ws-aux epochs 1", wrapped=True)
    term.press("ctrl+u", *"0.8", "ctrl+r", pause=0.0)  # a paste's speed, as a loaded machine may deliver keys
    term.wait_for("━━ table2-fcn-ws-aux α 0.8 epochs 1", wrapped=True)
    term.wait_until(lambda: len(list((tmp_path / "runs").glob("*/summary.json"))) == 3, "three runs recorded",
                    timeout=240)
    term.wait_for("queue empty", timeout=30)
    names = sorted(json.loads(p.read_text())["name"] for p in (tmp_path / "runs").glob("*/summary.json"))
    assert names == ["table2-fcn-ws-aux epochs 1 rounds 2 pairs 200", "table2-fcn-ws-aux α 0.2 epochs 1 rounds 2 "
                     "pairs 200", "table2-fcn-ws-aux α 0.8 epochs 1 rounds 2 pairs 200"]

    term.press("f3")
    term.wait_for("status")

    def rows() -> list[str]:
        """The results table's rows on screen, each by its name."""
        return sorted(line.split("▎")[-1].split("  ")[0].strip() for line in term.text.splitlines()
                      if " done " in line.split("▎")[-1])

    def shows(wanted: list[str], what: str) -> None:
        term.wait_until(lambda: rows() == wanted, what, timeout=30)

    shows(names, "three runs, three names")
    term.press("/", pause=0.3)
    term.press(*"alpha=0.8", pause=0.05)
    shows([names[2]], "alpha=0.8 finds its run")
    term.press("ctrl+u", *"0.2 alphas", pause=0.05)  # a value (of alpha, or the dropout all have) and a tag
    shows(names, "the form's tags went with every run")
    term.press("ctrl+u", *"alpha=0.2", pause=0.05)
    shows([names[1]], "alpha=0.2 finds its run")
    term.press("enter", pause=0.5)  # the table takes the keyboard; the one row it shows
    term.press("enter", pause=0.5)
    term.wait_for("Load into form (l)")
    term.press("t", pause=0.5)
    term.wait_for("Name, tags and note of")
    term.press("ctrl+u", pause=0.2)
    term.child.send("alphas, best\twins on round 1")  # in one write, as a fast typist's keys arrive
    term.pump(0.5)
    term.press("enter", pause=0.5)
    term.wait_for("Name, tags and note of", gone=True)
    term.press("escape", pause=0.5)
    term.wait_for("Load into form (l)", gone=True)
    term.press("/", pause=0.5)
    term.press("ctrl+u", *"best", pause=0.05)
    shows([names[1]], "the edited tag finds its run")
    record = next(json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/summary.json")
                  if "α 0.2" in json.loads(p.read_text())["name"])
    assert (record["tags"], record["note"]) == (["alphas", "best"], "wins on round 1")

    term.press("/", "ctrl+u", "enter", pause=0.5)  # every run again
    term.wait_until(lambda: len(rows()) == 3, "every run shown again")
    term.press(" ", " ", " ", pause=0.5)  # mark the three (space marks, then steps down), compare them
    term.wait_until(lambda: term.text.count("● ") == 3, "three runs marked")
    term.press("c", pause=0.5)
    term.wait_for("Paired (p)")
    term.wait_for("α 0.2 / ")  # what differs: alpha, with each run's value
    assert "weights 14.7 k (all)" in term.text
    term.press("p", pause=0.5)
    term.wait_for("3 pairs of runs")
    assert "Holm p" in term.text
    term.press("escape", pause=0.5)
    term.wait_for("Paired (p)", gone=True)
    term.press("a", pause=0.5)  # across runs: score against alpha
    term.wait_for("against alpha · 3 of 3 runs")
    term.press("escape", pause=0.5)

    term.press("up", "up", " ", " ", " ", pause=0.5)  # unmark the three: delete then takes the row under the cursor
    term.wait_until(lambda: "● " not in term.text, "no run marked")
    term.press("delete", pause=0.5)
    term.wait_for("moved 1 run to")
    term.press("delete", pause=0.5)
    term.wait_until(lambda: len(list((tmp_path / "runs" / ".trash").glob("*/summary.json"))) == 2, "two in trash")
    term.press("u", pause=0.5)
    term.wait_for("brought back 1 run")
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 2
    assert len(list((tmp_path / "runs" / ".trash").glob("*/summary.json"))) == 1
    assert term.quit_idle() == 0


def mouse(term: Terminal, kind: str, x: int, y: int, button: int = 0) -> None:
    """An xterm SGR mouse report at column x, row y (1-based), as a terminal sends it once the app asks."""
    code = {"press": button, "drag": 32 + button, "release": button}[kind]
    term.child.send(f"\x1b[<{code};{x};{y}{'m' if kind == 'release' else 'M'}")
    term.pump(0.05)


def test_inside_the_network_in_a_real_terminal(terminal, tmp_path):
    """Issue 20 where a user meets it: what an FCN's and a CNN's first layer learned, in their details, and the
    playground, where a stroke drawn with the mouse changes the network's answer."""
    from workbench.cli.entry import main

    at = ["--rounds", "2", "--epochs", "2", "--pairs", "200", "--hl", "16", "--c-hl", "8",
          "--runs-dir", str(tmp_path / "runs")]
    assert main(["run", "--subnet", "cnn", "--bc", "4", "--name", "a cnn", *at]) == 0
    assert main(["run", "--subnet", "fcn", "--no-weight-sharing", "--name", "an fcn", *at]) == 0
    term = terminal(120, 40)
    term.press("f3")
    term.wait_for("an fcn")
    term.press("up", "up", pause=0.2)  # the first row: the CNN (oldest first)
    for kind, side in (("filters", "both subnets (shared): 4 of its filters"), ("units", "left subnet: 16 of its")):
        term.press("enter", pause=0.5)
        term.wait_for("Load into form (l)")
        term.press("w", pause=0.5)
        term.wait_for(f"the weights of the first layer's {kind}")
        term.wait_for(side)
        if kind == "filters":
            term.press("escape", "down", pause=0.5)
    term.press("p", pause=0.5)  # the FCN's playground, from its details
    term.wait_for("P(first ≤ second)")
    term.wait_for("first digit:")  # the auxiliary loss: each head's ten probabilities

    def said() -> str:
        return next(line for line in term.text.splitlines() if "P(first ≤ second)" in line).split()[-1]

    before = said()
    mouse(term, "press", 8, 6)  # a stroke down the first canvas
    for y in range(6, 14):
        mouse(term, "drag", 10, y)
    mouse(term, "release", 10, 14)
    term.wait_until(lambda: said() != before, "the answer changed with the stroke", timeout=20)
    term.press("c", pause=0.5)  # cleared: the empty pair's answer again
    term.wait_until(lambda: said() == before, "the cleared canvases answer as before", timeout=20)
    term.press("escape", pause=0.5)
    assert term.quit_idle() == 0


@pytest.mark.parametrize("cols, rows", [(120, 40), (80, 24)])
def test_the_screens_a_new_user_read_hold_at_both_sizes(terminal, tmp_path, cols, rows):
    """Issue 30's app findings where a user met them: the footer lists every key (f1-f4, u) with nothing over
    them; a marked row keeps its name whole; names that differ only at their end read apart on the compare
    screen; the paired table's reason is whole; no legend sits inside a plot and no accuracy axis tops 100 %."""
    runs = str(tmp_path / "runs")
    tiny = ["--rounds", "2", "--epochs", "3", "--batch-size", "20", "--runs-dir", runs]
    for name, extra in (("table2-fcn-ws-aux α 0.2", ["--alpha", "0.2", "--pairs", "200"]),
                        ("table2-fcn-ws-aux α 0.8", ["--alpha", "0.8", "--pairs", "200"]),
                        ("table2-fcn-ws-aux fewer pairs", ["--pairs", "150"])):
        assert main(["run", "--preset", "table2-fcn-ws-aux", "--name", name, *extra, *tiny]) == 0
    term = terminal(cols, rows)
    term.press("f3", pause=0.5)
    term.wait_for("fewer pairs")
    footer = term.text.splitlines()[-1]
    assert "u Undo" in footer and "del Trash" in footer and "palettet" not in footer and "palettep" not in footer
    if cols >= 120:
        assert "f1 f2 f3 f4 views" in footer, footer
    term.press(" ", " ", " ", pause=0.4)  # mark the three
    term.wait_until(lambda: term.text.count("● ") == 3, "three runs marked")
    marked = [line for line in term.text.splitlines() if "● " in line]
    assert any("● table2-fcn-ws-aux α 0.2 " in line for line in marked), marked  # whole, not "α 0"
    assert any("● table2-fcn-ws-aux α 0.8 " in line for line in marked), marked
    term.press("c", pause=0.5)
    term.wait_for("Paired (p)")
    term.wait_for("what differs")
    term.pump(2.0)
    screen = term.text
    assert "0.2" in screen and "0.8" in screen
    plot_rows = [line for line in screen.splitlines() if "│" in line or "┤" in line]
    assert not any("table2-fcn" in line.split("│", 1)[-1] for line in plot_rows if line.count("│") >= 2), screen
    term.press("p", pause=0.5)
    term.wait_for("a − b")
    term.pump(1.0)
    lines = term.text.splitlines()
    reason = next(i for i, line in enumerate(lines) if "Welch: different" in line)
    below = lines[reason] + " " + lines[reason + 1]  # whole, wrapped at words where it must be
    assert "numbers" in below and "of pairs" in below and "…" not in below, term.text
    term.press("escape", pause=0.5)
    term.wait_for("Paired (p)", gone=True)
    term.press("enter", pause=0.5)  # a run's details: its accuracy with a ± std band over its two rounds
    term.wait_for("Load into form (l)")
    term.pump(1.0)
    axis = [float(tick) for line in term.text.splitlines() for tick in re.findall(r"(\d+(?:\.\d+)?)┤", line)]
    assert axis and max(axis) <= 100.0, term.text
    assert term.quit_idle() == 0


def test_which_settings_matter_and_the_wall_time_axis_in_a_real_terminal(terminal, tmp_path):
    """Issue 31 where a user meets it: `i` and `p` in the across-runs view over 24 runs, `w` in the live view."""
    from test_importance import study_runs, write_records

    write_records(tmp_path / "runs", study_runs())
    term = terminal(120, 40)
    term.press("f2", "w", pause=0.4)
    term.wait_for("seconds trained")
    term.press("w", pause=0.4)
    term.wait_for("seconds trained", gone=True)
    term.press("f3", pause=0.5)
    term.wait_for("run 23")
    term.press("a", pause=0.5)
    term.wait_for("Across runs")
    term.press("i", pause=0.5)
    term.wait_for("which settings matter · 24 runs")
    term.wait_for("Weight sharing ")  # the bars are in
    bars = term.text
    assert bars.index("Weight sharing ") < bars.index("alpha ") < bars.index("└")  # the one that matters on top
    term.press("p", pause=0.5)
    term.wait_for("colour: score")
    assert "every run through its settings to its test accuracy" in term.text and "Seed" in term.text
    term.press("ctrl+e", pause=0.5)
    term.wait_until(lambda: (tmp_path / "parallel.png").exists(), "the parallel figure written")
    assert term.quit_idle() == 0
