"""`make bench`: streaming overhead, cold start parts and synth time, written to docs/bench/.

    python -m bench [--quick] [--tokens N] [--repeats K] [--out DIR]

Every figure is the median of at least K runs (repeats go on, within --budget
seconds, where the ratio's spread is over 2 %). Engine runs alternate with the twin's and
the two senders' runs, and each of those is compared with the engine runs on either side
of it, so drift on a busy machine cancels.
Targets are printed PASS/FAIL for information; the exit status is 0 unless a
measurement crashed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench import cold_start, conversation, openai_door, render_cost, synth, waterfall
from bench.client import summarize
from bench.delivered import delivered_run, start_twin, twin_reply, warm_up
from bench.engine_runs import coalesced_run, engine_run, management_client, per_token_run
from bench.local_gateway import LocalGateway
from bench.machine import describe, machine_info
from bench.profile import flame_graphs, top_costs
from bench.report import write
from bench.stats import bracketed_ratio, spread_pct
from bench.targets import SPREAD_GOAL_PCT, check_all
from bench.tokens import token_counter
from llambda.engines.llamacpp_engine import LlamaCppEngine
from offline.default_model import default_model_path
from offline.trace import Trace

LATENCIES_MS = (0, 10, 30, 100)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _series(runs: list[dict[str, float]], latency_ms: float) -> dict[str, Any]:
    summary = summarize(runs)
    spread = spread_pct([run["ratio"] for run in runs])
    return {
        "latency_ms": latency_ms,
        **summary,
        "ratio_spread_pct": round(spread, 2) if math.isfinite(spread) else None,
        "runs": runs,
    }


SERIES = ("delivered", "sender_only", "per_token")


def streaming(
    tokens: int,
    repeats: int,
    latencies: tuple[float, ...],
    *,
    threads: int,
    series: tuple[str, ...] = SERIES,
    spread_goal_pct: float = SPREAD_GOAL_PCT,
    budget_s: float = 0.0,
) -> dict[str, Any]:
    """Engine runs and arm runs alternate: every run of the twin or a sender sits between
    two engine runs and is compared with their geometric mean, so drift on a busy machine
    cancels. The engine gets `threads` threads everywhere: alone, in the twin's worker,
    behind the senders. After `repeats`, the latencies whose delivered ratio's spread is
    still over `spread_goal_pct` get more runs of the twin, until `budget_s` has passed."""
    model = str(default_model_path())
    engine = LlamaCppEngine.load(model, n_threads=threads)
    count_tokens = token_counter(model)
    engine_runs: list[dict[str, float]] = []
    runs: dict[str, dict[float, list[dict[str, float]]]] = {
        name: {lat: [] for lat in latencies} for name in series
    }

    def engine_between() -> int:
        engine_runs.append(engine_run(engine, tokens))
        return len(engine_runs) - 1

    def spread(lat: float) -> float:
        return spread_pct([run["ratio"] for run in runs[series[0]][lat]])

    cloud = start_twin(threads)
    try:
        with LocalGateway() as gateway:
            api = management_client(gateway.endpoint_url)
            runners = {
                "delivered": partial(delivered_run, cloud),
                "sender_only": partial(coalesced_run, engine, gateway, api),
                "per_token": partial(per_token_run, engine, gateway, api),
            }
            short = min(tokens, 16)  # first-run allocations and imports, not measured
            twin_cold = warm_up(cloud, short)
            engine_run(engine, short)
            for warm in (coalesced_run, per_token_run):
                warm(
                    engine,
                    gateway,
                    api,
                    tokens=short,
                    latency_ms=0,
                    engine_ttft_ms=0,
                    count_tokens=count_tokens,
                )
            started = time.monotonic()
            before = engine_between()
            for r in itertools.count(1):
                # Repeats beyond `repeats` narrow the headline's spread where it is still
                # wide: the twin only, at those latencies only.
                wanted = [
                    lat
                    for lat in latencies
                    if r <= repeats
                    or (time.monotonic() - started < budget_s and spread(lat) > spread_goal_pct)
                ]
                if not wanted:
                    break
                for lat in wanted:
                    for name in series if r <= repeats else series[:1]:
                        figures: dict[str, Any] = dict(
                            runners[name](
                                tokens=tokens,
                                latency_ms=lat,
                                engine_ttft_ms=engine_runs[before]["ttft_ms"],
                                count_tokens=count_tokens,
                            )
                        )
                        after = engine_between()
                        figures["engine_runs"] = [before, after]
                        figures["ratio"] = bracketed_ratio(
                            figures["tokens_per_s"],
                            engine_runs[before]["tokens_per_s"],
                            engine_runs[after]["tokens_per_s"],
                        )
                        runs[name][lat].append(figures)
                        before = after
                    _log(
                        f"{threads} threads, repeat {r}, {lat:g} ms: engine "
                        f"{engine_runs[before]['tokens_per_s']:.1f} tokens/s; {series[0]} "
                        f"ratio {runs[series[0]][lat][-1]['ratio']:.3f}, "
                        f"±{spread(lat):.1f} % after {len(runs[series[0]][lat])} runs"
                    )
    finally:
        cloud.stop()
    return {
        "engine": {**summarize(engine_runs), "runs": engine_runs},
        **{name: [_series(runs[name][lat], lat) for lat in latencies] for name in series},
        "twin_cold": twin_cold,
    }


def first_token(args: argparse.Namespace, *, threads: int) -> dict[str, Any]:
    """The waterfall of one reply's first token (locally and with AWS latencies), then
    flame graphs of every function instance over `repeats` replies."""
    trace = Trace()
    cloud = start_twin(threads, trace=trace)
    try:
        twin_reply(cloud, 4)  # load the engine: the waterfall is of a warm instance
        results = waterfall.measure(cloud, trace, repeats=max(3, args.repeats))
        results["threads"] = threads

        def replies() -> None:
            for _ in range(args.repeats):
                twin_reply(cloud, args.tokens)

        graphs = flame_graphs(cloud, args.out, replies)
        results["flame_graphs"] = {
            Path(path).name: top_costs(Path(path)) for path in graphs.values()
        }
    finally:
        cloud.stop()
    return results


def conversation_ttft(args: argparse.Namespace, *, threads: int) -> dict[str, Any]:
    """Time to first token on turns 1 to 10 of one conversation on a warm instance, and
    from a resume's `attach` to its first replayed delta (bench/conversation.py)."""
    cloud = start_twin(threads)
    try:
        results = conversation.measure(cloud.ws_url, quick=args.quick)
    finally:
        cloud.stop()
    results["threads"] = threads
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    info["load_before"] = _load()
    _log(f"bench on {describe(info)}; load {info['load_before']}")
    results: dict[str, Any] = {
        "machine": info,
        "settings": {
            "tokens": args.tokens,
            "repeats": args.repeats,
            "latencies_ms": list(args.latencies),
            "llama_threads": os.cpu_count(),
            "quick": args.quick,
        },
    }
    started = time.perf_counter()
    cores = os.cpu_count() or 1
    results.update(
        streaming(
            args.tokens,
            args.repeats,
            tuple(args.latencies),
            threads=cores,
            budget_s=args.budget,
        )
    )
    if cores > 1:
        # In Lambda, DynamoDB and API Gateway run on other machines; here the twin emulates
        # them on the function's own cores. Leaving them a core shows what streaming itself
        # costs the function, apart from what emulating AWS costs this machine.
        _log("the same, with a core left for the emulated AWS services")
        results["spare_core"] = streaming(
            args.tokens,
            args.repeats,
            tuple(args.latencies),
            threads=cores - 1,
            series=("delivered",),
            budget_s=args.budget,
        )
    _log("the OpenAI-compatible endpoint, through the openai package")
    results["openai"] = openai_door.measure(args.tokens, args.repeats, threads=max(1, cores - 1))
    _log("first token, hop by hop; flame graphs of the functions")
    results["waterfall"] = first_token(args, threads=max(1, cores - 1))
    _log("first token by turn of one conversation, and after a resume")
    results["conversation"] = conversation_ttft(args, threads=max(1, cores - 1))
    _log("cold start parts")
    results["cold_start"] = cold_start.measure(
        str(default_model_path()), args.repeats, with_image=not args.no_image
    )
    if args.no_image:
        results["cold_start"]["image_added_mb"] = None
        results["cold_start"]["image_note"] = "skipped (--no-image)"
    if args.no_synth:
        results["synth"] = {"cdk_synth_s": None, "cdk_synth_note": "skipped (--no-synth)"}
    else:
        _log("cdk synth")
        results["synth"] = synth.measure(max(1, min(args.repeats, 3)))
    results["render"] = render_cost.measure(5 if args.quick else 15)  # the page, per delta
    info["load_after"] = _load()
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = check_all(results)
    return results


def print_summary(results: dict[str, Any]) -> None:
    e = results["engine"]
    print(f"engine alone: {e['tokens_per_s']:.1f} tokens/s, TTFT {e['ttft_ms']:.1f} ms")
    print(
        "latency | twin: tokens/s ratio +TTFT msg/s | sender only: ratio | per-token: "
        "tokens/s ratio +TTFT msg/s"
    )
    for d, c, p in zip(
        results["delivered"], results["sender_only"], results["per_token"], strict=True
    ):
        print(
            f"{d['latency_ms']:>5g}ms | {d['tokens_per_s']:7.1f} {d['ratio']:.3f}"
            f"±{d['ratio_spread_pct'] or 0:.1f}% "
            f"{d['added_ttft_ms']:6.1f} {d['messages_per_s']:5.1f} | {c['ratio']:.3f} | "
            f"{p['tokens_per_s']:7.1f} {p['ratio']:.3f} {p['added_ttft_ms']:6.1f} "
            f"{p['messages_per_s']:5.1f}"
        )
    c = results["cold_start"]
    print(
        f"import: inference {c['inference_import_ms']} ms, router {c['router_import_ms']} ms; "
        f"engine load {c['engine_load_ms']} ms; image adds {c.get('image_added_mb')} MB; "
        f"cdk synth {results['synth'].get('cdk_synth_s')} s"
    )
    spare = results.get("spare_core")
    if spare:
        print(
            f"with a core left for the emulated AWS services: engine alone "
            f"{spare['engine']['tokens_per_s']:.1f} tokens/s"
        )
        for d in spare["delivered"]:
            print(
                f"{d['latency_ms']:>5g}ms | {d['tokens_per_s']:7.1f} {d['ratio']:.3f}"
                f"±{d['ratio_spread_pct'] or 0:.1f}% "
                f"{d['added_ttft_ms']:6.1f} {d['messages_per_s']:5.1f}"
            )
    o = results.get("openai")
    if o:
        print(
            f"OpenAI-compatible endpoint ({o['threads']} threads): "
            f"{o['openai']['tokens_per_s']:.1f} tokens/s, ratio {o['openai']['ratio']:.3f}"
            f"±{o['openai']['ratio_spread_pct'] or 0:.1f}%, added first token "
            f"{o['openai']['added_ttft_ms']:.1f} ms"
        )
    w = results.get("waterfall")
    if w:
        for arm, title in (("local", "locally"), ("aws", "with AWS-typical latencies")):
            print(
                f"first token {title}: {w[arm]['first_token_ms']:.0f} ms, the engine's "
                f"{w[arm]['engine_ttft_ms']:.0f} ms, added {w[arm]['added_ms']:.1f} ms"
            )
    if results.get("conversation"):
        for line in conversation.summary_lines(results["conversation"]):
            print(line)
    for t in results["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        print(f"[{'PASS' if t['pass'] else 'FAIL'}] {t['name']}: {value} (target {t['target']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run: few tokens, 1 repeat")
    parser.add_argument("--tokens", type=int, help="tokens per reply (default 256; quick 48)")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 5; quick 1)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    parser.add_argument(
        "--latencies", type=float, nargs="+", default=list(LATENCIES_MS), metavar="MS"
    )
    parser.add_argument("--no-image", action="store_true", help="skip the image size install")
    parser.add_argument("--no-synth", action="store_true", help="skip timing `cdk synth`")
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds per streaming arm to add repeats until the ratio's spread is under "
        f"{SPREAD_GOAL_PCT:g} %% at every latency (default 1800; quick 0)",
    )
    args = parser.parse_args(argv)
    args.tokens = args.tokens or (48 if args.quick else 256)
    args.repeats = args.repeats or (1 if args.quick else 5)
    if args.budget is None:
        args.budget = 0.0 if args.quick else 1800.0
    if args.tokens < 2 or args.repeats < 1:
        parser.error("--tokens must be at least 2 and --repeats at least 1")
    results = run(args)
    paths = write(results, args.out)
    print_summary(results)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
