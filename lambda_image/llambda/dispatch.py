"""The router → inference event: what one dispatched chat carries (docs/architecture.md).

The router builds it with `to_event` and invokes the inference alias asynchronously; the
inference function reads it with `from_event`, and so does the dispatch-failure function,
which gets it back as the failure record's `requestPayload`.

It carries the conversation as the router's lease-taking write returned it, so the reply
starts without reading the table again, and the attachment it was admitted under, so the
reply notices a client that attaches from another connection. The history is bounded by the stage's
`historyMaxChars`, far below the 256 KB of an asynchronous payload; the lease keeps the
snapshot current (no other reply can change it meanwhile), and a `reset` meanwhile bumps
the epoch, so the reply's save is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llambda import protocol
from llambda.budgets import Reservation
from llambda.history import Message, valid_turns
from llambda.protocol import ChatOptions


class MalformedDispatch(ValueError):
    """An event that is not a dispatch (a hand-made invoke, or a payload cut short)."""


@dataclass(frozen=True)
class Dispatch:
    connection_id: str  # where the reply streams, until another connection attaches
    conversation_id: str
    reply_id: str
    request_id: str  # API Gateway's id of the frame that asked, to join the logs
    callback_url: str  # the @connections endpoint of the client's API stage
    prompt: str
    options: ChatOptions
    dispatched_at_ms: int
    history: tuple[Message, ...] = ()  # the conversation before this prompt
    epoch: int = 0  # the history's reset count, for the conditional save
    attach_count: int = 0  # the conversation's attaches when the chat was admitted
    # The tokens the chat holds on its budgets (llambda.budgets), given back as it ends.
    budget: Reservation | None = None

    def to_event(self) -> dict[str, Any]:
        return {
            "connectionId": self.connection_id,
            "conversationId": self.conversation_id,
            "replyId": self.reply_id,
            "requestId": self.request_id,
            "callbackUrl": self.callback_url,
            "prompt": self.prompt,
            "options": {**dataclasses.asdict(self.options), "stop": list(self.options.stop)},
            "dispatchedAt": self.dispatched_at_ms,
            "history": list(self.history),
            "epoch": self.epoch,
            "attachCount": self.attach_count,
            "budget": self.budget.to_event() if self.budget else None,
        }

    def messages(self) -> list[Message]:
        """The conversation the reply answers: the history, then the new prompt."""
        return [*self.history, {"role": "user", "content": self.prompt}]

    def attached(self, *, reset: bool) -> dict[str, Any]:
        """The answer to an `attach` that came while this reply runs (the reply sends it,
        before the deltas the client lacks): the turns it started from (none once a `reset`
        emptied them) and its prompt."""
        return protocol.attached(
            self.conversation_id,
            [] if reset else list(self.history),
            running_prompt=self.prompt,
            interrupted=False,
        )

    @classmethod
    def from_event(cls, event: Any) -> Dispatch:
        """The dispatch `event` holds; `MalformedDispatch` names what is missing or wrong."""
        if not isinstance(event, dict):
            raise MalformedDispatch("the event is not an object")
        try:
            options = event["options"]
            return cls(
                connection_id=_text(event["connectionId"]),
                conversation_id=_text(event["conversationId"]),
                reply_id=_text(event["replyId"]),
                request_id=str(event.get("requestId", "")),
                callback_url=_text(event["callbackUrl"]),
                prompt=_text(event["prompt"]),
                options=_options(options),
                dispatched_at_ms=int(event.get("dispatchedAt") or 0),
                history=tuple(valid_turns(event.get("history", []))),
                epoch=int(event.get("epoch") or 0),
                attach_count=int(event.get("attachCount") or 0),
                budget=Reservation.from_event(event.get("budget")),
            )
        except KeyError as missing:
            raise MalformedDispatch(f"no {missing.args[0]}") from None
        except (TypeError, ValueError, AttributeError) as wrong:
            raise MalformedDispatch(str(wrong)) from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("an id, URL or prompt is not a non-empty string")
    return value


def _options(raw: dict[str, Any]) -> ChatOptions:
    """The chat's options as `to_event` wrote them (every field of `ChatOptions`)."""
    max_tokens = int(raw["max_tokens"])
    names = {field.name for field in dataclasses.fields(ChatOptions)}
    values = {name: value for name, value in raw.items() if name in names}
    values["max_tokens"] = max_tokens
    values["stop"] = tuple(raw.get("stop") or ())
    return ChatOptions(**values)
