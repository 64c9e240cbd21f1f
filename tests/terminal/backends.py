"""A server the terminal tests talk to, by URL, and what it kept of a conversation."""

from __future__ import annotations

from dataclasses import dataclass

from terminal_client.client import ChatClient


@dataclass(frozen=True)
class Backend:
    name: str
    url: str

    def history(self, conversation: str) -> list[dict]:
        with ChatClient(self.url) as client:
            return client.history(conversation)
