"""Every file name of a run folder, said once. A run folder under the runs directory (runs/<id>/) holds:

summary.json      status, the full configuration, per-round results, mean and std, paper score, device, data
                  source, versions; written last, so a folder is a run exactly when it holds one (`is_run`)
history.csv       one row per round and epoch
predictions.npz   each round's test predictions after its last epoch (analysis/predictions.py reads them)
weights.npz       each kept round's trained network (records/weights.py)
resume.npz        the rounds' states to continue from (records/checkpoint.py)
run.json          while a run trains: what it is, so that a killed run can be continued
.writer           host:pid of the process writing the folder, until its summary is written

(Records before this layout also hold a config.json, which nothing reads.) Deleted runs wait in runs/.trash/.
"""

from __future__ import annotations

import re
from pathlib import Path

SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "predictions.npz"
WEIGHTS_FILE = "weights.npz"
RESUME_FILE = "resume.npz"
RUN_FILE = "run.json"
WRITER_FILE = ".writer"
TRASH = ".trash"  # a dot folder, so no reader of the runs directory takes it for a run
RECORD_FILES = (SUMMARY_FILE, HISTORY_FILE, PREDICTIONS_FILE, WEIGHTS_FILE)  # what a record adds to a claimed folder
TEMPORARY = re.compile(r"\.[\w.]+\.\w+\.tmp")  # fsutil's write in progress beside its target: .summary.json.k3j2.tmp


def is_temporary(name: str) -> bool:
    """A write cut short (fsutil writes beside the target, then renames): nothing a record holds."""
    return TEMPORARY.fullmatch(name) is not None


def is_run(folder: Path) -> bool:
    """A folder is a run once its summary is written (the summary goes last)."""
    return (folder / SUMMARY_FILE).exists()


def names_run(run_id: str, ref: str) -> bool:
    """Whether a user's reference names a run id: the whole id, or 4 or more characters of its start or end (the
    app shows an id's last six)."""
    return bool(ref) and (run_id == ref or (len(ref) >= 4 and (run_id.startswith(ref) or run_id.endswith(ref))))
