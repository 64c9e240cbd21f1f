"""A conversation's history (the server's `turns`) written as Markdown or JSON.

The conversation's id is left out: it is a capability (whoever has it can read,
continue or forget the conversation), and an export is made to be shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROLES = {"user": "You", "assistant": "Assistant"}


def as_markdown(turns: list[dict[str, Any]]) -> str:
    parts = ["# llambda conversation"]
    for turn in turns:
        role = str(turn.get("role", ""))
        parts.append(f"## {ROLES.get(role, role.capitalize())}\n\n{turn.get('content', '')}")
    return "\n\n".join(parts) + "\n"


def as_json(turns: list[dict[str, Any]]) -> str:
    return json.dumps({"turns": turns}, ensure_ascii=False, indent=2) + "\n"


def write_export(turns: list[dict[str, Any]], path: Path) -> None:
    """JSON when `path` ends in .json, Markdown otherwise."""
    text = as_json(turns) if path.suffix.lower() == ".json" else as_markdown(turns)
    path.write_text(text, encoding="utf-8")
