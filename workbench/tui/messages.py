"""Messages from the app's worker threads to the app (a thread never touches a widget), and what the app says of them."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from workbench.tui.text import markup


@dataclass
class DigitsReady(Message):
    """torch is loaded and the digit source is known."""

    source_name: str
    cuda_available: bool
    cuda_reason: str
    most_pairs: int = 0  # pairs a round can draw from these digits (0: not known)


@dataclass
class DigitsFailed(Message):
    reason: str


@dataclass
class RunProgress(Message):
    """Epoch records of the current run, batched by the thread (a few messages a second at most)."""

    item_id: int
    records: list


@dataclass
class RunFinished(Message):
    """A queued run ended: done, cancelled or failed; `unsaved` says why its record is not on disk."""

    item_id: int
    summary: object  # runs.RunSummary
    unsaved: str = ""
    tracked: str = ""  # where an MLflow store took it, or why not
    sent: bool = False
    said: str = ""  # what else happened to the records (a cancelled run it continued went to the trash; a
                    # checkpoint could not be written)
    superseded: str = ""  # the id of that record


@dataclass
class RunUpdated(Message):
    """A run's record rewritten (its tags and note): its row in the results table follows."""

    summary: object


@dataclass
class RunsGone(Message):
    """Run records of the results table no longer in the runs folder (moved or deleted by another process)."""

    ids: list


@dataclass
class RunsFound(Message):
    """Run records that appeared in the runs folder since the last look (written by a CLI run, a sweep), or that
    a sweep's final measurement just wrote."""

    summaries: list
    problems: list


@dataclass
class SweepEnded(Message):
    """The sweep's thread is done: started, watched, measured, or stopped."""


@dataclass
class SweepUpdate(Message):
    """The sweep's trials as read from its storage, and a line on where it stands."""

    trials: list
    running: bool
    note: str = ""


def finished_notices(message: RunFinished, line: str) -> list[tuple[str, dict]]:
    """What the app says when a run ends, as (text, notify's options): how it ended, then whether its record was
    saved and where an MLflow store took it."""
    summary = message.summary
    name = markup(summary.name)
    if summary.status == "failed":
        notices = [(f"{name}: {markup(summary.reason)}", {"title": "Run failed", "severity": "error", "timeout": 10})]
    elif summary.status == "cancelled":
        notices = [(f"{name} cancelled; its partial history is kept", {"title": "Cancelled"})]
    else:
        notices = [(f"{name}: {line}", {"title": "Run finished"})]
    if message.unsaved:
        notices.append((f"{markup(message.unsaved)}; its results are shown here only",
                        {"title": "Run not saved", "severity": "error", "timeout": 15}))
    if message.said:
        notices.append((markup(message.said), {"title": "Records"}))
    if message.tracked:
        notices.append((markup(message.tracked),
                        {"title": "MLflow", "severity": "information" if message.sent else "warning"}))
    return notices
