"""Text a user or a file gave, as the app draws it: plain text, never markup, never a terminal command."""

from __future__ import annotations

from rich.text import Text
from textual.markup import escape

from workbench.format import plain


def markup(text) -> str:
    """For a string that Textual parses as markup (labels, notifications, legends): the text exactly as given."""
    return escape(plain(text))


def cell(text, style: str = "") -> Text:
    """For a table cell or an option: a Text, which no widget parses."""
    return Text(plain(text), style=style)
