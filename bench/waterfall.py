"""Where the first token's time goes: one reply through the twin, hop by hop.

The twin records what it does (`offline.trace`): the frame reaching the gateway, each
function run, each AWS call, the Invoke call and each @connections post. The client
records when its frame left and when the first delta arrived, on the same clock. The
engine's own prefill comes from the reply's `done` timing (`ttft_ms`, measured in the
worker from the start of generation to the first token).

Run twice: as measured here, and with AWS-typical latencies injected into the twin's
services (`AWS_LATENCIES`). Hops the twin does not emulate (API Gateway's own) are
added to the second as stated figures (`AWS_GATEWAY_MS`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.delivered import twin_reply
from offline.cloud import OfflineCloud
from offline.trace import AWS_CALL, FRAME, INVOKE, POST, RUN, Span, Trace


@dataclass(frozen=True)
class Injected:
    """A latency injected into one of the twin's services, with where the figure is from."""

    service: str
    ms: float
    source: str


# AWS-typical figures for a warm path in one region, each with where it comes from. AWS
# publishes a figure only for DynamoDB; the others are third-party measurements or, where
# none was found, assumptions, said as such (measure your own: API Gateway's
# `IntegrationLatency`, Lambda's `AsyncEventAge`, and timing the calls in the handlers).
AWS_LATENCIES = {
    "dynamodb": Injected(
        "DynamoDB call (GetItem/UpdateItem), client round trip",
        7.0,
        "AWS: 'For most atomic operations, such as GetItem and PutItem, an average latency "
        "is in single-digit milliseconds' (repost.aws/knowledge-center/dynamodb-high-latency), "
        "not counting the caller's transport; from a warm Lambda with the connection kept "
        "alive, third-party measurements give 5-10 ms "
        "(theburningmonk.com/2019/02/lambda-optimization-tip-enable-http-keep-alive)",
    ),
    "invoke": Injected(
        "Lambda Invoke, InvocationType=Event (the 202 plus the queue's hand-off)",
        40.0,
        "no AWS figure; about 40 ms more than a synchronous invoke at the median, derived "
        "from a third-party 2022 measurement "
        "(bitesizedserverless.com/bite/serverless-messaging-latency-compared)",
    ),
    "connections": Injected(
        "@connections PostToConnection",
        15.0,
        "no published figure found: an assumption for an in-region HTTPS call over a "
        "kept-alive connection",
    ),
}
# API Gateway's own hops, which the twin does not emulate, by the hop they follow. No AWS
# figure: 30 ms per layer is a third-party 2018 REST API measurement
# (forum.serverless.com/t/lambda-call-latency/3891); the frame out is an assumption.
AWS_GATEWAY_MS = {
    "gateway → router starts": 30.0,
    "gateway → client": 10.0,
}


@dataclass(frozen=True)
class Hop:
    label: str
    start_ms: float  # from the client's send
    ms: float
    emulated: bool = True  # False: a stated figure, not measured through the twin

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.ms


def _one(kind: str, spans: list[Span], after: float = 0.0) -> Span:
    for span in spans:
        if span.kind == kind and span.start >= after:
            return span
    raise LookupError(f"no {kind} span after {after}")


def _invoked(invoke: Span) -> str:
    """The function an Invoke span called, by name: the path may carry an alias
    (`name:live`) or be an ARN."""
    name = invoke.name
    return name.split(":")[6] if name.startswith("arn:") else name.split(":")[0]


def _reply_run(spans: list[Span], invoke: Span) -> Span | None:
    """The invoked function's run: by name, as a `$disconnect` of the previous reply's
    connection may run meanwhile."""
    target = _invoked(invoke)
    return next(
        (s for s in spans if s.kind == RUN and s.name == target and s.start >= invoke.start),
        None,
    )


def _settled(trace: Trace, sent: float) -> list[Span]:
    """The spans once the reply's run has ended (a run is recorded when it ends, and the
    client hears `done` before the inference function returns)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = trace.spans(sent)
        invoke = next((s for s in spans if s.kind == INVOKE), None)
        if invoke is not None and _reply_run(spans, invoke) is not None:
            return spans
        time.sleep(0.01)
    raise TimeoutError("the reply's run was not recorded")


def hops(
    sent: float, messages: list[tuple[float, dict]], spans: list[Span]
) -> tuple[list[Hop], dict[str, float]]:
    """The first-token path as hops, and its totals."""
    # The inference function's posts, in order, are the reply's messages but the router's
    # `conversation` (a new conversation's id, sent before the reply).
    posted = [(t, m) for t, m in messages if m.get("type") != "conversation"]
    first_delta = next(i for i, (_, m) in enumerate(posted) if m.get("type") == "delta")
    arrived = posted[first_delta][0]
    final = messages[-1][1]
    engine_ttft_ms = float((final.get("timing") or {}).get("ttft_ms") or 0)

    def ms(t: float) -> float:
        return (t - sent) * 1000

    frame = _one(FRAME, spans, sent)
    router = _one(RUN, spans, frame.start)
    invoke = _one(INVOKE, spans, router.start)
    inference = _reply_run(spans, invoke)
    if inference is None:
        raise LookupError(f"no run of {invoke.name} after its invoke")
    # The reply's posts in order: its messages arrive in the order they were posted.
    posts = [s for s in spans if s.kind == POST and s.start >= inference.start]
    first_post = posts[first_delta]
    out = [
        Hop("client → gateway", 0.0, ms(frame.start)),
        Hop("gateway → router starts", ms(frame.start), (router.start - frame.start) * 1000),
    ]
    cursor = router.start
    for call in (s for s in spans if s.kind == AWS_CALL and router.start <= s.start < invoke.start):
        out.append(Hop("router code", ms(cursor), (call.start - cursor) * 1000))
        out.append(Hop(f"router: {_operation(call)}", ms(call.start), call.ms))
        cursor = call.end
    out.append(Hop("router code", ms(cursor), (invoke.start - cursor) * 1000))
    out.append(Hop("Invoke (async hand-off)", ms(invoke.start), invoke.ms))
    out.append(
        Hop("queue → inference starts", ms(invoke.end), (inference.start - invoke.end) * 1000)
    )
    generating = first_post.start - engine_ttft_ms / 1000
    cursor = inference.start
    for span in spans:
        if not (inference.start <= span.start < generating):
            continue
        if span.kind == AWS_CALL:
            label = f"inference: {_operation(span)}"
        elif span.kind == POST:
            label = "inference: status post"
        else:
            continue
        out.append(Hop("inference code", ms(cursor), (span.start - cursor) * 1000))
        out.append(Hop(label, ms(span.start), span.ms))
        cursor = max(cursor, span.end)
    out.append(Hop("inference code", ms(cursor), (generating - cursor) * 1000))
    out.append(Hop("prefill + first token (engine)", ms(generating), engine_ttft_ms))
    out.append(Hop("first delta post", ms(first_post.start), first_post.ms))
    out.append(Hop("gateway → client", ms(first_post.end), (arrived - first_post.end) * 1000))
    out = [h for h in out if h.ms > 0.05 or not h.label.endswith("code")]
    totals = {
        "first_token_ms": round(ms(arrived), 1),
        "engine_ttft_ms": round(engine_ttft_ms, 1),
        "added_ms": round(ms(arrived) - engine_ttft_ms, 1),
    }
    return out, totals


def _operation(span: Span) -> str:
    # "DynamoDB_20120810.UpdateItem" → "DynamoDB UpdateItem"
    service, _, operation = span.name.partition(".")
    return f"{service.split('_')[0]} {operation}".strip()


def measure(cloud: OfflineCloud, trace: Trace, *, tokens: int = 8, repeats: int = 5) -> dict:
    """The median reply's waterfall, locally and with AWS-typical latencies injected."""
    arms: dict[str, Any] = {}
    for arm in ("local", "aws"):
        runs = []
        for _ in range(repeats):
            cloud.faults.reset()
            if arm == "aws":
                cloud.faults.aws.latency_ms = AWS_LATENCIES["dynamodb"].ms
                cloud.faults.invoke.latency_ms = AWS_LATENCIES["invoke"].ms
                cloud.faults.connections.latency_ms = AWS_LATENCIES["connections"].ms
            trace.clear()
            arrivals, sent = twin_reply(cloud, tokens)
            messages = arrivals.messages
            runs.append(hops(sent, messages, _settled(trace, sent)))
        cloud.faults.reset()
        runs.sort(key=lambda run: run[1]["added_ms"])
        chosen, totals = runs[len(runs) // 2]
        if arm == "aws":
            chosen, totals = _with_gateway(chosen, totals)
        arms[arm] = {
            "hops": [asdict(h) for h in chosen],
            **totals,
            "added_ms_runs": [r[1]["added_ms"] for r in runs],
        }
    arms["injected"] = {k: asdict(v) for k, v in AWS_LATENCIES.items()}
    arms["gateway_ms"] = AWS_GATEWAY_MS
    return arms


def _with_gateway(path: list[Hop], totals: dict[str, float]) -> tuple[list[Hop], dict]:
    """Add API Gateway's own hops (not emulated) where they fall, shifting what follows."""
    out: list[Hop] = []
    shift = 0.0
    extra = AWS_GATEWAY_MS
    for hop in path:
        moved = Hop(hop.label, hop.start_ms + shift, hop.ms, hop.emulated)
        out.append(moved)
        if hop.label in extra and extra[hop.label] > 0:
            added = Hop(f"{hop.label} (API Gateway, stated)", moved.end_ms, extra[hop.label], False)
            out.append(added)
            shift += added.ms
    gateway_ms = sum(extra.values())
    return out, {
        **totals,
        "first_token_ms": round(totals["first_token_ms"] + gateway_ms, 1),
        "added_ms": round(totals["added_ms"] + gateway_ms, 1),
    }


def plot(results: dict, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [("local", "Measured locally (the twin)"), ("aws", "With AWS-typical latencies")]
    fig, axes = plt.subplots(len(arms), 1, figsize=(10, 8.5), constrained_layout=True)
    for ax, (arm, title) in zip(axes, arms, strict=True):
        path_hops = [Hop(**h) for h in results[arm]["hops"]]
        labels = [h.label for h in path_hops]
        colours = [
            "#9aa5b1" if not h.emulated else "#d97706" if "engine" in h.label else "#2563eb"
            for h in path_hops
        ]
        ax.barh(
            range(len(path_hops)),
            [max(h.ms, 0.2) for h in path_hops],
            left=[h.start_ms for h in path_hops],
            color=colours,
        )
        for i, h in enumerate(path_hops):
            ax.text(h.start_ms + max(h.ms, 0.2) + 0.5, i, f"{h.ms:.1f}", va="center", fontsize=7)
        ax.set_yticks(range(len(path_hops)), labels, fontsize=7)
        ax.invert_yaxis()
        r = results[arm]
        ax.set_title(
            f"{title}: first token at {r['first_token_ms']:.0f} ms, of which the engine "
            f"{r['engine_ttft_ms']:.0f} ms, added {r['added_ms']:.0f} ms",
            fontsize=9,
        )
        ax.set_xlabel("ms after the client sent its frame", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
