"""Messages from the training thread to the app: the thread never touches a widget."""

from __future__ import annotations

from textual.message import Message


class DigitsReady(Message):
    """torch is loaded and the digit source is known."""

    def __init__(self, source_name: str, cuda_available: bool, cuda_reason: str) -> None:
        super().__init__()
        self.source_name = source_name
        self.cuda_available = cuda_available
        self.cuda_reason = cuda_reason


class DigitsFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class RunProgress(Message):
    """Epoch records of the current run, batched by the thread (a few messages a second at most)."""

    def __init__(self, item_id: int, records: list) -> None:
        super().__init__()
        self.item_id = item_id
        self.records = records


class RunFinished(Message):
    """A queued run ended: done, cancelled or failed. `summary` is None when nothing could be recorded."""

    def __init__(self, item_id: int, summary, error: str = "") -> None:
        super().__init__()
        self.item_id = item_id
        self.summary = summary
        self.error = error
