"""Attribute values and JSON documents as text a person reads, never as markup."""

from __future__ import annotations

import json
from typing import Any

from rich.json import JSON
from rich.text import Text

from plano_cli.traces_cli.render_show import attribute_value

INLINE_JSON = 60  # a list or object longer than this, as JSON, is shown indented


def readable(value: Any) -> Text:
    """A value as a person reads it: JSON (also JSON held in a string) indented when long."""
    data = value
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            data = json.loads(value)
        except ValueError:
            data = value
    if isinstance(data, dict | list):
        compact = json.dumps(data, ensure_ascii=False, default=str)
        return json_text(compact, indent=None if len(compact) <= INLINE_JSON else 2)
    return Text(attribute_value(value, width=None))


def json_text(document: str, indent: int | None = 2) -> Text:
    """Highlighted JSON that wraps: rich's keeps long lines whole, which cuts them here."""
    text = JSON(document, indent=indent).text
    text.no_wrap, text.overflow = False, "fold"
    return text
