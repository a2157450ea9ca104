"""Keys act in the order the terminal sent them, however fast they come (a paste, a fast typist, a loaded VM)."""

import time

import pytest
from textual import events
from textual.app import App
from textual.widgets import Input

from workbench.tui.app import WorkbenchApp
from workbench.tui.form import ConfigForm
from workbench.tui.results import ResultsTable
from workbench.tui.text_input import TextInput

KEY_NAMES = {".": "full_stop", ",": "comma", " ": "space"}


def send_at_once(app, *keys: str) -> None:
    """Each key into the app's queue as the terminal driver puts it there, none waiting for the one before."""
    for key in keys:
        if len(key) == 1:
            app.post_message(events.Key(KEY_NAMES.get(key, key), key))
        else:
            app.post_message(events.Key(key, None))


class OneField(App):
    def compose(self):
        yield TextInput("0.5", id="field")


@pytest.mark.parametrize("keys, expected", [
    (["ctrl+u", *"0.8"], "0.8"),
    (["b", "a", "backspace", "c"], "0.5bc"),
    (["end", "1", "left", "2"], "0.521"),
    (["home", "delete", "9"], "9.5"),
])
async def test_a_fields_own_keys_act_between_the_characters_typed_around_them(keys, expected):
    app = OneField()
    async with app.run_test() as pilot:
        field = app.query_one(TextInput)
        field.focus()
        await pilot.pause()
        field.cursor_position = len(field.value)
        send_at_once(app, *keys)
        await pilot.pause(0.2)
        assert field.value == expected


async def test_ctrl_r_queues_what_was_typed_just_before_it(tmp_path):
    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "export.csv")
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        for key, value in {"epochs": "1", "rounds": "1", "pairs": "100", "hl": "8", "c_hl": "8"}.items():
            form.query_one(f"#f-{key}", Input).value = value
        alpha = form.query_one("#f-alpha", Input)
        alpha.focus()
        await pilot.pause()
        assert alpha.value == "0.5"
        send_at_once(app, "ctrl+u", *"0.8", "ctrl+r")
        table = app.query_one(ResultsTable)
        deadline = time.monotonic() + 60
        while not (table.summaries and app.runs.idle):
            assert time.monotonic() < deadline, "the run never ended"
            await pilot.pause(0.05)
        (summary,) = table.summaries.values()
        assert summary.config.alpha == 0.8
