"""The one generation every measurement repeats: fixed prompt, greedy, fixed length.

The engine adapter has no seed and no ignore-EOS option, so the run is made repeatable
by greedy decoding (temperature 0: no randomness, so no seed to fix) and a prompt that
makes the model write far past the token count, so every run stops at `max_tokens`.

Each run numbers its prompt: llama-cpp-python reuses the KV cache of a prompt prefix it
has just evaluated, so repeating one prompt would skip prompt evaluation after the first
run and shrink time to first token to a single token's time.
"""

from __future__ import annotations

import itertools
from typing import Any

from llambda.engines import GenerationRequest
from llambda.protocol import ChatOptions

PROMPT = "Write a long, detailed essay about the history of the printing press, with many sections."
TEMPERATURE = 0.0


_runs = itertools.count(1)


def prompt() -> str:
    """The prompt for the next run (a new number each time, see above)."""
    return f"Request {next(_runs)}. {PROMPT}"


def engine_request(tokens: int) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": prompt()}],
        options=ChatOptions(max_tokens=tokens, temperature=TEMPERATURE),
    )


def chat_message(tokens: int) -> dict[str, Any]:
    """The same request as a client sends it (docs/protocol.md)."""
    return {
        "action": "chat",
        "prompt": prompt(),
        "options": {"max_tokens": tokens, "temperature": TEMPERATURE},
    }
