"""Time to first token across one conversation, and right after a resume.

One conversation of `TURNS` chats on a warm instance: for each turn, the time from its
`chat` frame to its first delta as the client sees it, the engine's own (`timing.ttft_ms`,
prefill and first token) and the prompt's token count. The prompt holds the whole history,
so a late turn costs about what the first does only if llama.cpp reuses the shared prefix
it has in its KV cache (the history rendered to the same tokens as the turn before).

Then a resume: a reply's connection is closed after its first deltas, and `AWAY_S` later
the client connects again and sends `attach` with the last seq it had. The figure is the
time from that frame to the first replayed delta (and to the `attached` answer): what a
resume adds, since the replayed deltas were already generated.

Both speak through the terminal client's `ChatClient`, to any stage's URL:
`python -m bench.conversation ws://127.0.0.1:8787/dev [--quick]` (`make dev` running).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

from bench.stats import median
from terminal_client import messages
from terminal_client.client import ChatClient

TURNS = 10
REPORTED = (1, 5, 10)
TOPICS = (
    "the sea",
    "mountains",
    "bread",
    "the moon",
    "trains",
    "bees",
    "winter",
    "libraries",
    "rivers",
    "clocks",
)
RESUME_PROMPT = "Write a long story about a lighthouse keeper and her cat, with many chapters."
RESUME_TOKENS = 160  # long enough to still be running when the client comes back
AWAY_S = 0.3  # how long the client is gone: the reply goes on and its deltas are kept
TEMPERATURE = 0.0  # greedy: the same replies, so the same history, on every run
_conversations = itertools.count(1)


def _recording(url: str, origin: str | None) -> tuple[ChatClient, list[tuple[float, dict]]]:
    arrivals: list[tuple[float, dict]] = []
    client = ChatClient(url, origin=origin, on_message=lambda at, m: arrivals.append((at, m)))
    return client.connect(), arrivals


def _finish(client: ChatClient, timeout: float) -> dict[str, Any]:
    """Read the awaited reply to its end; its `done` (anything else is an error here)."""
    final: dict[str, Any] = {}
    for message in client.reply(timeout=timeout):
        final = message
    if final.get("type") != "done":
        raise RuntimeError(f"the reply ended with {final}")
    return final


def conversation_run(
    url: str, *, turns: int = TURNS, tokens: int = 32, origin: str | None = None
) -> list[dict[str, float]]:
    """One conversation: each turn's client TTFT, the engine's, and its prompt tokens."""
    client, arrivals = _recording(url, origin)
    number = next(_conversations)
    rows = []
    try:
        for turn in range(1, turns + 1):
            start = len(arrivals)
            sent = time.perf_counter()
            topic = TOPICS[(turn - 1) % len(TOPICS)]
            # Turn 1 is numbered: otherwise it would be the last conversation's turn 1 again,
            # whose tokens the instance still holds, and be timed as no prefill at all.
            opening = f"Conversation {number}. " if turn == 1 else ""
            client.chat(
                f"{opening}In two sentences, tell me something about {topic}.",
                {"max_tokens": tokens, "temperature": TEMPERATURE},
            )
            done = _finish(client, timeout=300)
            first = next(at for at, m in arrivals[start:] if m.get("type") == "delta")
            timing, usage = done.get("timing") or {}, done.get("usage") or {}
            rows.append(
                {
                    "turn": turn,
                    "ttft_ms": round((first - sent) * 1000, 1),
                    "engine_ttft_ms": float(timing.get("ttft_ms") or 0),
                    "init_ms": float(timing.get("init_ms") or 0),
                    "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                }
            )
    finally:
        client.close()
    return rows


def resume_run(url: str, *, origin: str | None = None) -> dict[str, Any]:
    """A reply left after its second delta and attached again `AWAY_S` later."""
    client, arrivals = _recording(url, origin)
    try:
        client.chat(RESUME_PROMPT, {"max_tokens": RESUME_TOKENS, "temperature": TEMPERATURE})
        for message in client.reply(timeout=300):
            if message.get("type") == "delta" and client.last_seq >= 1:
                break
        had = client.last_seq
        client.close()
        time.sleep(AWAY_S)
        client.connect()
        start = len(arrivals)
        sent = time.perf_counter()
        client.send(messages.attach(str(client.conversation), had))
        done = _finish(client, timeout=300)
    finally:
        client.close()
    later = arrivals[start:]
    attached = next(at for at, m in later if m.get("type") == "attached")
    replayed = [at for at, m in later if m.get("type") == "delta" and m.get("seq", -1) > had]
    return {
        "resume_ms": round((replayed[0] - sent) * 1000, 1) if replayed else None,
        "attached_ms": round((attached - sent) * 1000, 1),
        "had_seq": had,
        "reason": done.get("reason"),
    }


def measure(url: str, *, quick: bool = False, origin: str | None = None) -> dict[str, Any]:
    """Medians over 1 (quick) or 3 conversations and resumes, after a warm-up reply."""
    repeats = 1 if quick else 3
    tokens = 16 if quick else 32
    warm, _ = _recording(url, origin)
    try:
        warm.chat("Say hi.", {"max_tokens": 4})
        _finish(warm, timeout=600)  # a cold instance loads the engine here, not in turn 1
    finally:
        warm.close()
    runs = [conversation_run(url, tokens=tokens, origin=origin) for _ in range(repeats)]
    turns = [
        {
            key: median([run[i][key] for run in runs])
            for key in ("turn", "ttft_ms", "engine_ttft_ms", "init_ms", "prompt_tokens")
        }
        for i in range(TURNS)
    ]
    resumes = [resume_run(url, origin=origin) for _ in range(repeats)]
    resumed = [r["resume_ms"] for r in resumes if r["resume_ms"] is not None]
    first, last = turns[0], turns[-1]
    return {
        "tokens_per_turn": tokens,
        "conversations": repeats,
        "turns": turns,
        "turn10_over_turn1": round(last["ttft_ms"] / first["ttft_ms"], 3),
        "engine_turn10_over_turn1": round(
            last["engine_ttft_ms"] / max(first["engine_ttft_ms"], 1e-3), 3
        ),
        "runs": runs,
        "resume": {
            "resume_ms": median(resumed) if resumed else None,
            "attached_ms": median([r["attached_ms"] for r in resumes]),
            "away_s": AWAY_S,
            "runs": resumes,
        },
    }


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """The figures as `make bench` prints them."""
    by_turn = {int(t["turn"]): t for t in figures["turns"]}
    lines = [
        "time to first token by turn of one conversation (client; engine; prompt tokens): "
        + ", ".join(
            f"turn {n} {by_turn[n]['ttft_ms']:.0f} ms; {by_turn[n]['engine_ttft_ms']:.0f} ms; "
            f"{by_turn[n]['prompt_tokens']:.0f}"
            for n in REPORTED
        )
        + f" (turn 10 / turn 1: {figures['turn10_over_turn1']:.2f})"
    ]
    resume = figures["resume"]
    shown = "n/a" if resume["resume_ms"] is None else f"{resume['resume_ms']:.1f} ms"
    lines.append(
        f"resume: attach → first replayed delta {shown} (attached answer "
        f"{resume['attached_ms']:.1f} ms)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversation", description=__doc__)
    parser.add_argument("url", help="the stage's WebSocket URL, e.g. ws://127.0.0.1:8787/dev")
    parser.add_argument("--quick", action="store_true", help="one conversation, short replies")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.url, quick=args.quick)
    print(json.dumps(figures, indent=2) if args.json else "\n".join(summary_lines(figures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
