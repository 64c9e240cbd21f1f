"""A conversation's messages and the one rule for trimming them, shared by the store (the
history it keeps) and the engines (the prompt that fits the context window). Imports
nothing else of ours, so the router can use it without loading an engine module."""

from __future__ import annotations

from collections.abc import Callable

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": "..."}


def drop_oldest_turns(
    messages: list[Message], fits: Callable[[list[Message]], bool], *, keep: int = 1
) -> list[Message]:
    """Drop the oldest exchanges until `fits(messages)` or only the last `keep` messages
    are left. The prompt keeps the new message; the stored history may keep nothing."""
    messages = list(messages)
    while len(messages) > keep and not fits(messages):
        # A user turn goes with its reply, so what is left starts with a user turn.
        pair = len(messages) > keep + 1 and messages[1].get("role") == "assistant"
        del messages[: 2 if pair else 1]
    return messages


def valid_turns(raw: object) -> list[Message]:
    """The user and assistant turns of a stored or dispatched history; anything else is
    dropped (an item written by hand, or by an older version)."""
    if not isinstance(raw, list):
        return []
    return [
        {"role": t["role"], "content": t["content"]}
        for t in raw
        if isinstance(t, dict)
        and t.get("role") in ("user", "assistant")
        and isinstance(t.get("content"), str)
    ]
