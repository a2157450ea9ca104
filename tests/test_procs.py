"""Processes started from inside the app, where sys.stderr is a capture without a descriptor."""

import subprocess
import sys
import textwrap

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
