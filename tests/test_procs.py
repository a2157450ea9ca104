"""Processes started from inside the app, where sys.stderr is a capture without a descriptor."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from proctools import alive, children_of

SCRIPT = textwrap.dedent("""
    import io, sys
    from workbench.procs import spawn_context

    class Capture(io.TextIOBase):  # what Textual puts in sys.stderr while an app runs
        def fileno(self):
            return -1

        def write(self, s):
            return len(s)

    def child():
        pass

    if __name__ == "__main__":
        sys.stderr = Capture()
        p = spawn_context().Process(target=child, daemon=True)
        p.start()
        p.join(60)
        print("exit", p.exitcode, file=sys.__stdout__)
""")


def test_a_process_starts_while_stderr_has_no_descriptor(tmp_path):
    """In a real terminal the app's sweep screen failed here with 'bad value(s) in fds_to_keep'."""
    script = tmp_path / "start.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "exit 0", done.stdout + done.stderr


def test_a_worker_process_ends_when_its_parent_is_killed(tmp_path):
    """kill -9 of `digit-workbench table` while a stack trains in a worker process: the worker does not live on."""
    import os
    import signal
    import time

    env = dict(os.environ, DIGIT_WORKBENCH_RUNS=str(tmp_path / "runs"))
    cli = subprocess.Popen([sys.executable, "-m", "workbench", "table", "table2-fcn-ws", "table2-cnn-ws",
                            "--device", "cpu", "--no-save"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and not workers:
            time.sleep(0.5)  # the resource tracker and the pool's worker are the children
            workers = [c for c in children_of(cli.pid) if "spawn_main" in open(f"/proc/{c}/cmdline").read()]
        assert workers, "no worker process started"
        time.sleep(1.0)
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(alive(w) for w in workers)


def _cores_in_a_daemon(queue) -> None:
    from workbench.engine.scheduler import cores_for, plan_jobs
    from workbench.paper.config import RunConfig

    config = RunConfig(subnet="cnn", hl=512, kl=2, bc=24, c_hl=512, c_kl=2, device="cpu")  # worth splitting
    queue.put((cores_for([config]), len(plan_jobs([config], [[0]], cores_for([config])))))


def test_a_sweep_worker_never_splits_a_stack_into_processes_of_its_own():
    """Sweep workers are daemonic processes, which may not start processes: a big CNN trial trains in the
    worker itself (it crashed the trial's stack-dispatch thread before)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_cores_in_a_daemon, args=(queue,), daemon=True)
    worker.start()
    cores, jobs = queue.get(timeout=120)
    worker.join(30)
    assert cores == 1 and jobs == 1


def test_sigterm_to_a_sweep_stops_its_workers_and_keeps_its_trials(tmp_path):
    """One SIGTERM to `sweep --workers 2`: one line, exit 130, the trials CSV written, no trial left 'running', no
    worker left behind (it used to die at once: exit -15, no line, no CSV, trials running)."""
    import csv
    import os
    import signal
    import time

    spec = tmp_path / "slow.toml"
    spec.write_text('validation_pairs = 40\n[base]\nhl = 8\nc_hl = 4\nrounds = 2\nepochs = 400\npairs = 300\n'
                    'batch_size = 5\ndevice = "cpu"\n[[stage]]\nname = "widths"\ngrid = { hl = [8, 16, 32, 64] }\n')
    env = dict(os.environ, DIGIT_WORKBENCH_RUNS=str(tmp_path / "runs"), COLUMNS="200")
    cli = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", str(spec), "--workers", "2",
                            "--data", "embedded"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 90
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = [c for c in children_of(cli.pid) if "spawn_main" in open(f"/proc/{c}/cmdline").read()]
        assert len(workers) == 2, "the workers did not start"
        time.sleep(8)  # each has a trial in flight
        cli.send_signal(signal.SIGTERM)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130, err
    assert "stopped; trials written to" in out and "Traceback" not in err
    rows = list(csv.DictReader((tmp_path / "runs" / "sweeps" / "slow-trials.csv").open()))
    assert rows and "running" not in {r["state"] for r in rows}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(alive(w) for w in workers)


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from workbench.procs import sigterm_between_writes, whole_write

    sigterm_between_writes()
    out = Path(sys.argv[1])
    if sys.argv[2] == "inside":
        with whole_write():
            print("writing", flush=True)
            time.sleep(1.0)
            out.write_text("whole")
    else:
        print("idle", flush=True)
    time.sleep(30)
""")


def test_sigterm_waits_for_a_whole_write_then_ends_the_worker_by_sigterm(tmp_path):
    import signal

    for where in ("inside", "outside"):
        out = tmp_path / f"{where}.txt"
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(out), where], stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        child.send_signal(signal.SIGTERM)
        assert child.wait(20) == -signal.SIGTERM  # ended by the signal, as an unhandled one ends it
        assert out.exists() == (where == "inside")  # the write it was in finished; nothing else ran after


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_the_sweeps_own_interrupt_waits_for_a_whole_write(signum):
    """The sweep's parent writes the journal too (a dead worker's trial failed): a Ctrl-C or SIGTERM inside that
    write comes at its end, so no record is cut short and no lock file stays behind."""
    import signal

    from workbench.procs import sigterm_as_interrupt, whole_write

    finished = []
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        with whole_write():
            os.kill(os.getpid(), getattr(signal, signum))
            time.sleep(0.05)  # the handler has run by now: it waited
            finished.append("the write")
        finished.append("after it")  # never: the interrupt comes as the block ends
    assert finished == ["the write"]
