"""Looking at processes from a test: which children a process has, and whether one still runs (Linux /proc)."""

from pathlib import Path


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (ended, not yet reaped) counts as gone."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]


_records = None  # a pool process's records queue (the scheduler's, in a test of its shutdown)


def keep_records(records) -> None:
    global _records
    _records = records


def put_records(size: int) -> int:
    """As a stack's process does at its end: records (a round's states) larger than a pipe holds, then return."""
    _records.put(b"x" * size)
    return size
