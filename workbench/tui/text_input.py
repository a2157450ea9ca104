"""The app's one-line text field, with keys that act in the order they were typed."""

from __future__ import annotations

from typing import Callable

from textual import events
from textual.widgets import Input


class TextInput(Input):
    """An Input whose own keys (backspace, ctrl+u, arrows, …) act where they were typed.

    Textual types a character as soon as the field sees it, but runs the field's bound keys only once the key has
    bubbled back to the app, so "ctrl+u 0.8" typed fast can end as ".8" (textual#6605). Running them here keeps the
    order the terminal sent."""

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input's own handler types it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()  # handled: neither Input's handler nor the app's bindings see it again
                return


def after_typing(focused, callback: Callable[[], None]) -> None:
    """Run `callback` once the focused field has taken every key sent before it (a priority key such as ctrl+r
    acts at once, before the field has typed the characters that came just ahead of it)."""
    if isinstance(focused, Input):
        focused.call_later(callback)
    else:
        callback()
