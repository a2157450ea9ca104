"""What a run record must hold to be read: types, ranges, finite numbers. A summary.json that fails names the
field; runs.load_runs reads every record through here (the file itself is opened only as a regular file of sane
size, and nesting too deep for a summary is refused there)."""

from __future__ import annotations

import math
from typing import Any

STATUSES = ("done", "cancelled", "failed")
PAPER_TEXT = ("table", "row", "note")
MAX_TAGS, MAX_TAG, MAX_NOTE = 20, 40, 2000  # a run's tags and note: words and a few sentences, not documents
MAX_NAME = 200  # a name the user gives: a line in a table, not a paragraph


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fraction(value: Any) -> bool:
    """An accuracy or a paper score as records keep them: a finite number in [0, 1]."""
    return number(value) and 0.0 <= value <= 1.0


def check(ok: bool, field: str, what: str, value: Any) -> None:
    if not ok:
        shown = repr(value) if isinstance(value, (int, float, bool, type(None))) else type(value).__name__
        raise ValueError(f"{field}: {what}, got {shown[:40]}")


def check_summary(d: Any) -> None:
    """ValueError naming the first field of a summary that is not what a reader may rely on."""
    check(isinstance(d, dict), "summary", "a JSON object", d)
    for key in ("id", "status"):
        check(isinstance(d.get(key), str) and d.get(key) != "", key, "text", d.get(key))
    check(d["status"] in STATUSES, "status", f"one of {', '.join(STATUSES)}", d["status"])
    check(isinstance(d.get("config"), dict), "config", "an object", d.get("config"))
    for key in ("name", "preset", "reason", "device", "data_source", "engine", "continues"):
        check(d.get(key) is None or isinstance(d[key], str), key, "text", d.get(key))
    for key in ("mean", "std"):
        check(d.get(key) is None or fraction(d[key]), key, "a fraction in [0, 1] or null", d.get(key))
    for key in ("wall_time", "started_at", "saved_at"):
        check(key not in d or (number(d[key]) and d[key] >= 0), key, "a finite number, at least 0", d.get(key))
    accs = d.get("round_acc", [])
    check(isinstance(accs, list), "round_acc", "a list", accs)
    for i, acc in enumerate(accs):
        check(fraction(acc), f"round_acc[{i}]", "a fraction in [0, 1]", acc)
    check(isinstance(d.get("versions", {}), dict), "versions", "an object", d.get("versions"))
    cost = d.get("cost", {})
    check(isinstance(cost, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                         and math.isfinite(v) for v in cost.values()),
          "cost", "an object of finite numbers", cost)
    check(d.get("edited") in (None, True, False), "edited", "true, false or null", d.get("edited"))
    tags = d.get("tags", [])
    check(isinstance(tags, list) and len(tags) <= MAX_TAGS, "tags", f"a list of at most {MAX_TAGS}", tags)
    for i, tag in enumerate(tags):
        check(isinstance(tag, str) and 0 < len(tag) <= MAX_TAG, f"tags[{i}]", f"text of 1 to {MAX_TAG} characters", tag)
    check(isinstance(d.get("note", ""), str) and len(d.get("note", "")) <= MAX_NOTE, "note",
          f"text of at most {MAX_NOTE} characters", d.get("note"))
    check_rounds(d.get("rounds", []))
    check_paper(d.get("paper"))


def check_rounds(rounds: Any) -> None:
    check(isinstance(rounds, list), "rounds", "a list", rounds)
    for i, r in enumerate(rounds):
        check(isinstance(r, dict), f"rounds[{i}]", "an object", r)
        check(isinstance(r.get("round"), int) and not isinstance(r.get("round"), bool) and 0 <= r["round"] < 10 ** 6,
              f"rounds[{i}].round", "a whole number from 0", r.get("round"))
        check(r.get("status") in STATUSES, f"rounds[{i}].status", f"one of {', '.join(STATUSES)}", r.get("status"))
        for key in ("test_acc", "train_acc", "digit_acc", "val_acc"):
            check(r.get(key) is None or fraction(r[key]), f"rounds[{i}].{key}", "a fraction in [0, 1] or null",
                  r.get(key))


def check_paper(paper: Any) -> None:
    if paper is None:
        return
    check(isinstance(paper, dict), "paper", "an object or null", paper)
    check(set(paper) <= {"score", "std", *PAPER_TEXT}, "paper", "score, std, table, row and note only",
          sorted(set(paper) - {"score", "std", *PAPER_TEXT}))
    check(fraction(paper.get("score")), "paper.score", "a fraction in [0, 1]", paper.get("score"))
    check(paper.get("std") is None or fraction(paper["std"]), "paper.std", "a fraction in [0, 1] or null",
          paper.get("std"))
    for key in PAPER_TEXT:
        check(isinstance(paper.get(key, ""), str), f"paper.{key}", "text", paper.get(key))
