"""Questions over the current screen: yes/no (quit during a run), one of several (which run to cancel)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from workbench.records.notebook import check_name, check_note, parse_tags
from workbench.tui.text import markup
from workbench.tui.text_input import TextInput


class Confirm(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "no", "No"), Binding("y", "yes", "Yes"), Binding("n", "no", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question)
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


class Choose(ModalScreen[str | None]):
    """Pick one of several answers (which run to cancel when several train together); escape picks none."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, question: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question, self.options = question, options

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question)
            yield OptionList(*[Option(label, id=key) for key, label in self.options], id="choices")

    def on_mount(self) -> None:
        self.query_one("#choices", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class NotesDialog(ModalScreen[tuple[str, list[str], str] | None]):
    """A run's name, tags (comma-separated) and note, edited; Save (or enter) hands them back checked, escape
    drops them. The keyboard starts in the tags, as it always did; the name is one shift+tab away."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, name: str, tags: list[str], note: str) -> None:
        super().__init__()
        self.run_name, self.tags, self.note = name, tags, note

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(f"Name, tags and note of {markup(self.run_name)}")
            yield TextInput(self.run_name, placeholder="the run's name", id="notes-name")
            yield TextInput(", ".join(self.tags), placeholder="tags, comma-separated", id="notes-tags")
            yield TextInput(self.note, placeholder="a note", id="notes-note")
            yield Label("", id="notes-error")
            with Horizontal():
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#notes-tags", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.save() if event.button.id == "save" else self.dismiss(None)

    def save(self) -> None:
        try:
            name = check_name(self.query_one("#notes-name", Input).value)
            if name is None:
                raise ValueError("a run keeps a name: type one, or escape to leave it as it is")
            tags = parse_tags(self.query_one("#notes-tags", Input).value)
            note = check_note(self.query_one("#notes-note", Input).value)
        except ValueError as exc:
            self.query_one("#notes-error", Label).update(markup(str(exc)))
            return
        self.dismiss((name, tags, note))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
