"""Where a record's numbers came from, beyond its config, seed and device: the workbench's version, and its git
commit (with a dirty flag) when it runs from a checkout; and what the run cost the process that trained it (peak
memory, CPU seconds). The CPU kind and the libraries come with the engine's result (engine/base.py). Torch-free."""

from __future__ import annotations

import functools
import resource
import subprocess
from pathlib import Path

import workbench

GIT_TIMEOUT_S = 2.0  # a checkout on a slow disk or a hung git must not hold up a record


@functools.cache
def code_version() -> dict[str, str]:
    """{"workbench": version[, "commit": sha, with "+dirty" when tracked files differ from it]}."""
    out = {"workbench": workbench.__version__}
    top = Path(workbench.__file__).resolve().parent.parent
    if not (top / ".git").exists():  # an installed copy: its version says it all
        return out
    try:
        sha = subprocess.run(["git", "-C", str(top), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=GIT_TIMEOUT_S, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(top), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return out
    if sha:
        out["commit"] = sha + ("+dirty" if dirty else "")
    return out


def usage() -> tuple[float, float]:
    """(CPU seconds so far, peak resident MiB) of this process and the worker processes it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, max(own.ru_maxrss, children.ru_maxrss) / 1024  # Linux counts in KiB


def cost_since(start: tuple[float, float]) -> dict[str, float]:
    """What training cost since `start` (a `usage()`): CPU seconds (shared by runs trained together, and by what
    else the process did meanwhile) and the process's peak memory, as a record keeps them."""
    cpu, peak = usage()
    return {"cpu_s": round(cpu - start[0], 2), "peak_mib": round(peak, 1)}
