"""Write a run's figures: results.json, results.md and delivered_tps.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import waterfall
from bench.machine import describe
from bench.targets import SPREAD_GOAL_PCT


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ms_by_label(hops: list[dict[str, Any]]) -> dict[str, float]:
    """Each hop label's total (a label such as "router code" recurs along the path)."""
    totals: dict[str, float] = {}
    for hop in hops:
        totals[hop["label"]] = totals.get(hop["label"], 0) + hop["ms"]
    return totals


def _waterfall(w: dict[str, Any] | None) -> list[str]:
    if not w:
        return []
    local, aws = w["local"], w["aws"]
    out = [
        "## First token, hop by hop",
        "",
        f"One warm reply through the twin (llama.cpp on {w['threads']} threads), the median "
        f"of {len(local['added_ms_runs'])} by added time; ![waterfall](waterfall.png).",
        "",
        "| | first token | the engine's own (prefill + first token) | added |",
        "| --- | ---: | ---: | ---: |",
        f"| measured locally | {_f(local['first_token_ms'])} ms | "
        f"{_f(local['engine_ttft_ms'])} ms | **{_f(local['added_ms'])} ms** "
        f"(runs: {', '.join(_f(x) for x in local['added_ms_runs'])}) |",
        f"| with AWS-typical latencies | {_f(aws['first_token_ms'])} ms | "
        f"{_f(aws['engine_ttft_ms'])} ms | **{_f(aws['added_ms'])} ms** |",
        "",
        "| hop | locally | with AWS latencies |",
        "| --- | ---: | ---: |",
    ]
    local_ms, aws_ms = _ms_by_label(local["hops"]), _ms_by_label(aws["hops"])
    for label in dict.fromkeys([*local_ms, *aws_ms]):
        out.append(f"| {label} | {_f(local_ms.get(label))} | {_f(aws_ms.get(label))} |")
    out += ["", "Injected into the twin for the AWS column:", ""]
    for item in w["injected"].values():
        out.append(f"- {item['service']}: {_f(item['ms'])} ms. {item['source']}.")
    for label, ms in w["gateway_ms"].items():
        out.append(f'- API Gateway\'s own "{label}" (not emulated, added as stated): {_f(ms)} ms.')
    graphs = w.get("flame_graphs") or {}
    if graphs:
        names = sorted(graphs)
        out += [
            "",
            "Flame graphs (py-spy, Python and native frames) of each function instance over "
            "the same replies: "
            + ", ".join(f"[{name}]({name})" for name in names)
            + ". Share of all samples whose stack holds:",
            "",
            "| | " + " | ".join(names) + " |",
            "| --- |" + " ---: |" * len(names),
        ]
        for category in graphs[names[0]]:
            cells = " | ".join(f"{graphs[n][category]:.1f} %" for n in names)
            out.append(f"| {category} | {cells} |")
    return [*out, ""]


def _conversation(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    out = [
        "## A conversation: first token by turn, and after a resume",
        "",
        f"One conversation of {len(c['turns'])} turns on a warm instance of the twin "
        f"(llama.cpp on {c['threads']} thread(s)), {c['tokens_per_turn']} tokens a reply, "
        f"greedy; the median of {c['conversations']}. Each prompt holds the whole history, so "
        "a late turn is as quick as the first only if llama.cpp reuses the prefix it "
        "already has in its KV cache.",
        "",
        "| turn | first token (client) | the engine's (prefill + first token) | prompt tokens |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for turn in c["turns"]:
        out.append(
            f"| {turn['turn']:.0f} | {_f(turn['ttft_ms'])} ms | {_f(turn['engine_ttft_ms'])} ms "
            f"| {turn['prompt_tokens']:.0f} |"
        )
    resume = c["resume"]
    out += [
        "",
        f"Turn 10 ÷ turn 1: **{_f(c['turn10_over_turn1'], 2)}** as the client sees it, "
        f"{_f(c['engine_turn10_over_turn1'], 2)} for the engine alone.",
        "",
        f"A resume (the connection closed after a reply's second delta, `attach` sent "
        f"{resume['away_s']:g} s later with the last seq had): **{_f(resume['resume_ms'])} ms** "
        f"from the `attach` frame to the first replayed delta, {_f(resume['attached_ms'])} ms "
        "to the `attached` answer (runs: "
        + ", ".join(_f(r["resume_ms"]) for r in resume["runs"])
        + " ms).",
        "",
    ]
    return out


def _headline(results: dict[str, Any]) -> list[str]:
    """Delivered ÷ engine at matched threads (the same llama.cpp threads in both arms),
    with the spread of the repeated runs: all cores, then a core left for emulation."""
    out = [
        "## Headline: delivered ÷ engine at matched threads",
        "",
        f"CPU: {results['machine']['cpu']}. Engine runs alternate with the twin's; each "
        "ratio is a twin run over the geometric mean of the engine runs either side of it. "
        "± is the 95 % confidence half-width of the mean ratio (Student's t).",
        "",
        "| llama.cpp threads (both arms) | `@connections` latency | engine tokens/s "
        "| delivered tokens/s | ratio | spread | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    arms = [(results, results["settings"]["llama_threads"], "")]
    if results.get("spare_core"):
        arms.append(
            (results["spare_core"], results["settings"]["llama_threads"] - 1, ", a core spare")
        )
    for streamed, threads, note in arms:
        engine = streamed["engine"]["tokens_per_s"]
        for row in streamed["delivered"]:
            spread = row.get("ratio_spread_pct")
            out.append(
                f"| {threads}{note} | {row['latency_ms']:g} ms | {_f(engine)} "
                f"| {_f(row['tokens_per_s'])} | **{_f(row['ratio'], 3)}** "
                f"| {'n/a' if spread is None else f'± {spread:.1f} %'} | {len(row['runs'])} |"
            )
    return [*out, ""]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    engine = results["engine"]
    out = [
        "# Benchmark results",
        "",
        f"Generated by `make bench` on {m['date']}: {describe(m)}. Load average "
        f"{_f(m.get('load_before'), 2)} before and {_f(m.get('load_after'), 2)} after the "
        "run (other work on the machine slows every figure).",
        "",
        f"Every figure is the median of at least {s['repeats']} runs (more where the ratio's "
        f"spread was still over {SPREAD_GOAL_PCT:g} %). Workload: SmolLM2-135M-Instruct "
        f"(Q4_1 GGUF) on llama.cpp with {s['llama_threads']} threads, {s['tokens']} tokens, "
        "greedy, one prompt (numbered per run, so no run reuses the last one's prompt cache). "
        "Delivered figures are timed by a WebSocket client of the "
        "local twin (`offline/`), Dev stage, with `@connections` latency added to every post.",
        "",
        *_headline(results),
        "## Streaming",
        "",
        f"Engine alone: **{_f(engine['tokens_per_s'])} tokens/s**, time to first token "
        f"{_f(engine['ttft_ms'])} ms.",
        "",
        "| `@connections` latency | twin: tokens/s | / engine | added TTFT | messages/s "
        "| sender only: / engine | per-token: tokens/s | / engine | added TTFT | messages/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sender = {r["latency_ms"]: r for r in results["sender_only"]}
    per_token = {r["latency_ms"]: r for r in results["per_token"]}
    for d in results["delivered"]:
        c = sender.get(d["latency_ms"], {})
        p = per_token.get(d["latency_ms"], {})
        out.append(
            f"| {d['latency_ms']:g} ms | {_f(d['tokens_per_s'])} | {_f(d['ratio'], 3)} "
            f"| {_f(d['added_ttft_ms'])} ms | {_f(d['messages_per_s'])} "
            f"| {_f(c.get('ratio'), 3)} "
            f"| {_f(p.get('tokens_per_s'))} | {_f(p.get('ratio'), 3)} "
            f"| {_f(p.get('added_ttft_ms'))} ms | {_f(p.get('messages_per_s'))} |"
        )
    out += [
        "",
        "- **Twin**: the runtime's coalescing sender through the whole local twin: router, "
        "async dispatch, the inference worker, stop polls against moto, `@connections`, the "
        "gateway. On this machine all of that shares the cores with the engine.",
        "- **Sender only**: the same coalescing sender and engine in one process, posting "
        "through boto3 to a bare `@connections` endpoint: what coalescing itself costs.",
        "- **Per-token**: the public demos' pattern, the same engine posting every token "
        "with `post_to_connection` and waiting for it, on that same bare endpoint.",
        "",
        "Tokens/s counts the tokens after the first text the client sees, from that moment "
        "to the last text; added TTFT is the client's time to first text minus the engine's. "
        "Each ratio compares a run with the engine-alone run just before it.",
        "",
    ]
    spare = results.get("spare_core")
    if spare:
        out += [
            "",
            "### With a core left for the emulated AWS services",
            "",
            "In Lambda, DynamoDB and API Gateway run on other machines. Here the twin runs "
            "them, the gateway and the measuring client on the same cores as the engine, and "
            "llama.cpp's threads wait for each other at every step, so a few milliseconds "
            "taken from one of them stall both. The same twin run with the engine (alone and "
            f"in the worker) on {s['llama_threads'] - 1} thread(s) leaves a core for the "
            "emulation and shows what streaming itself costs the function: "
            f"engine alone {_f(spare['engine']['tokens_per_s'])} tokens/s.",
            "",
            "| `@connections` latency | twin: tokens/s | / engine | added TTFT | messages/s |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for d in spare["delivered"]:
            out.append(
                f"| {d['latency_ms']:g} ms | {_f(d['tokens_per_s'])} | {_f(d['ratio'], 3)} "
                f"| {_f(d['added_ttft_ms'])} ms | {_f(d['messages_per_s'])} |"
            )
    out += [
        "",
        "![delivered tokens/s](delivered_tps.png)",
        "",
        "## Cold start parts",
        "",
        "| part | figure |",
        "| --- | ---: |",
    ]
    cold = results["cold_start"]
    out += [
        f"| inference handler import (no engine) | {_f(cold.get('inference_import_ms'))} ms |",
        f"| router handler import | {_f(cold.get('router_import_ms'))} ms |",
        f"| engine load (llama.cpp, tiny model) | {_f(cold.get('engine_load_ms'))} ms |",
        f"| first reply of a fresh twin worker: engine init | "
        f"{_f(results.get('twin_cold', {}).get('first_reply_init_ms'))} ms |",
        f"| what the image adds above its base (model excluded) | "
        f"{_f(cold.get('image_added_mb'))} MB |",
        f"| `cdk synth`, both stages | {_f(results['synth'].get('cdk_synth_s'), 2)} s |",
        "",
    ]
    slowest = cold.get("inference_slowest_imports") or []
    if slowest:
        out.append(
            "Slowest imports of the inference handler (cumulative): "
            + ", ".join(f"{i['package']} {i['ms']:g} ms" for i in slowest)
            + "."
        )
        out.append("")
    largest = cold.get("image_largest_packages_mb") or {}
    if largest:
        out.append(
            "Largest packages in the image: "
            + ", ".join(f"{name} {mb:g} MB" for name, mb in largest.items())
            + "."
        )
        out.append("")
    out += _waterfall(results.get("waterfall"))
    out += _conversation(results.get("conversation"))
    out += ["## Targets", "", "| target | figure | goal | result |", "| --- | ---: | --- | --- |"]
    for t in results["targets"]:
        value = t["value"]
        shown = _f(value, 3) if isinstance(value, float) and value < 10 else _f(value)
        out.append(f"| {t['name']} | {shown} | {t['target']} | {'PASS' if t['pass'] else 'FAIL'} |")
    out += ["", "Targets are informational: the bench reports, it does not fail.", ""]
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latencies = [d["latency_ms"] for d in results["delivered"]]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.axhline(
        results["engine"]["tokens_per_s"], color="grey", linestyle="--", label="engine alone"
    )
    ax.plot(
        latencies,
        [d["tokens_per_s"] for d in results["delivered"]],
        marker="o",
        label="coalesced sender, through the local twin",
    )
    ax.plot(
        [c["latency_ms"] for c in results["sender_only"]],
        [c["tokens_per_s"] for c in results["sender_only"]],
        marker="^",
        linestyle=":",
        label="coalesced sender alone",
    )
    ax.plot(
        [p["latency_ms"] for p in results["per_token"]],
        [p["tokens_per_s"] for p in results["per_token"]],
        marker="s",
        label="per-token synchronous posts",
    )
    ax.set_xlabel("@connections latency per post (ms)")
    ax.set_ylabel("tokens/s the client sees")
    ax.set_xticks(latencies)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{results['settings']['tokens']} tokens, {results['machine']['date']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: a figure that is not finite is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.json", out_dir / "results.md", out_dir / "delivered_tps.png"]
    text = json.dumps(_finite(results), indent=2, allow_nan=False)
    paths[0].write_text(text + "\n", encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    plot(results, paths[2])
    if results.get("waterfall"):
        paths.append(out_dir / "waterfall.png")
        waterfall.plot(results["waterfall"], paths[-1])
    return paths
