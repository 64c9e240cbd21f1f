"""Added time to first token, this tree against an earlier commit: `make bench-ab BEFORE=<ref>`.

Both arms are the whole system as each version ships it: its own synthesized Dev stage,
its own twin and runtime, each in its own process tree, with the same tiny model on
llama.cpp at one thread. The earlier commit is checked out beside this tree (a git
worktree under the system's temporary directory) and synthesized there with this tree's
installed tools. `--variant KEY=VALUE…` adds a third arm: this tree synthesized with that
context as well (settings turned off, say, to compare like with like). Replies go round
the arms in an order that turns each round (ABC, CBA, BCA, …), so a machine that slows
down or speeds up during the run weighs on every arm alike; each reply opens its own
connection and asks a newly numbered prompt, so no arm reuses a prompt cache.

"Added" is what the client waited for its first text beyond the engine's own prefill and
first token (the `ttft_ms` the reply's `done` reports): everything the stack puts
between a browser and the model. `--busy N` keeps N more processes spinning on the CPU
throughout, to measure a busy machine. Writes docs/bench/first_token_ab.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.delivered import reply_at
from bench.machine import describe, machine_info
from bench.stats import median

REPO = Path(__file__).resolve().parent.parent
STAGE = "Dev"
ASSEMBLY = "cdk.out.dev"
TOKENS = 8
THREADS = 1


@dataclass(frozen=True)
class Arm:
    name: str  # "before", "after" or "variant"
    ref: str  # what it runs: a commit, and how it was synthesized
    root: Path
    assembly: str = ASSEMBLY


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _path_env(root: Path) -> dict[str, str]:
    """The environment that makes `root`'s own packages win over this tree's, which the
    virtual environment puts on every interpreter's path."""
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'lambda_image'}"}


def model_file() -> Path:
    out = _run([sys.executable, "-m", "offline.default_model"], cwd=REPO)
    return Path(out.strip())


def twin_context(model: Path, extra: list[str]) -> list[str]:
    """`cdk synth`'s context for the twin's stage: the tiny model, and `extra` pairs."""
    pairs = [f"{STAGE}.engine=llamacpp", f"{STAGE}.modelFile={model.name}"]
    pairs += [f"{STAGE}.{pair}" for pair in extra]
    return [arg for pair in pairs for arg in ("-c", pair)]


def synth(root: Path, assembly: str, context: list[str]) -> None:
    if not (root / assembly / "manifest.json").exists():
        _run(
            ["npx", "cdk", "synth", "--quiet", "-o", assembly, *context],
            cwd=root,
            env=_path_env(root),
        )


def prepare_before(ref: str) -> Arm:
    """A worktree of `ref` with its Dev stage synthesized for the tiny model."""
    sha = _run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=REPO).strip()
    root = Path(tempfile.gettempdir()) / f"llambda-before-{sha[:12]}"
    if not (root / ".git").exists():
        shutil.rmtree(root, ignore_errors=True)
        _run(["git", "worktree", "add", "--detach", str(root), sha], cwd=REPO)
    for shared in (".venv", "node_modules"):  # this tree's installed tools
        if not (root / shared).exists():
            (root / shared).symlink_to(REPO / shared)
    model = model_file()
    models = root / "lambda_image" / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not (models / model.name).exists():
        shutil.copyfile(model, models / model.name)
    synth(root, ASSEMBLY, twin_context(model, []))
    return Arm("before", sha[:12], root)


def _this_tree() -> str:
    sha = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO).strip()
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO).strip()
    return sha + (" + uncommitted changes" if dirty else "")


def prepare_after() -> Arm:
    if not (REPO / ASSEMBLY / "manifest.json").exists():
        raise SystemExit(f"{ASSEMBLY} is missing: run `make twin-synth` (make bench-ab does)")
    return Arm("after", _this_tree(), REPO)


def prepare_variant(pairs: list[str]) -> Arm:
    """This tree, synthesized afresh with `pairs` (`key=value`) as context too."""
    assembly = "cdk.out.variant"
    shutil.rmtree(REPO / assembly, ignore_errors=True)
    synth(REPO, assembly, twin_context(model_file(), pairs))
    return Arm("variant", f"{_this_tree()}, -c " + " -c ".join(pairs), REPO, assembly)


@contextmanager
def twin(arm: Arm) -> Iterator[tuple[str, str]]:
    """`arm`'s twin, run by its own CLI: (page URL, WebSocket URL)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "offline",
            "--assembly",
            arm.assembly,
            "--stage",
            STAGE,
            "--port",
            "0",
            "--env",
            f"LLAMA_THREADS={THREADS}",
        ],
        cwd=arm.root,
        env=_path_env(arm.root),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(2)]
        if not all(lines):
            raise RuntimeError(f"the {arm.name} twin did not start")
        yield lines[0], lines[1]
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` spinning interpreters for as long as the block runs."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def added_ms(page_url: str, ws_url: str) -> float:
    """One reply on a fresh connection: the client's time to first text less the engine's."""
    arrivals, started = reply_at(ws_url, page_url.rstrip("/"), TOKENS)
    final = arrivals.final() or {}
    first = arrivals.delta_times()[0]
    return (first - started) * 1000 - float(final["timing"]["ttft_ms"])


def rounds(names: list[str], count: int) -> Iterator[list[str]]:
    """Each round's order: turned by one each round, and reversed every other one."""
    for i in range(count):
        turned = names[i % len(names) :] + names[: i % len(names)]
        yield turned if i % 2 == 0 else turned[::-1]


def measure(arms: list[Arm], *, pairs: int, busy_processes: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {arm.name: [] for arm in arms}
    with ExitStack() as stack:
        urls = {arm.name: stack.enter_context(twin(arm)) for arm in arms}
        for name in urls:  # the first reply of each loads its engine: not measured
            added_ms(*urls[name])
            added_ms(*urls[name])
        stack.enter_context(busy(busy_processes))
        for order in rounds(list(urls), pairs):
            for name in order:
                runs[name].append(round(added_ms(*urls[name]), 2))
    out: dict[str, Any] = {
        "arms": [
            {
                "name": arm.name,
                "ref": arm.ref,
                "runs": runs[arm.name],
                "median_ms": round(median(runs[arm.name]), 2),
                "median_difference_ms": round(
                    median([a - b for a, b in zip(runs[arm.name], runs["before"], strict=True)]),
                    2,
                ),
            }
            for arm in arms
        ],
        "pairs": pairs,
        "busy_processes": busy_processes,
        "tokens": TOKENS,
        "threads": THREADS,
        "machine": describe(machine_info()),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return out


def render(results: dict[str, Any]) -> str:
    arms = results["arms"]
    busy_text = (
        f"{results['busy_processes']} more process(es) spinning on the CPU throughout"
        if results["busy_processes"]
        else "nothing else asked of the machine by the bench"
    )
    rows = [
        f"| {arm['name']} | `{arm['ref']}` | {arm['median_ms']:.1f} ms | "
        + ("" if arm["name"] == "before" else f"{arm['median_difference_ms']:+.1f} ms")
        + f" | {', '.join(f'{r:.1f}' for r in sorted(arm['runs']))} |"
        for arm in arms
    ]
    return "\n".join(
        [
            "# Added time to first token, before and after",
            "",
            f"Generated by `make bench-ab BEFORE={arms[0]['ref']}` on "
            f"{results['measured_at']}: {results['machine']}; {busy_text}. Do not edit by hand.",
            "",
            "Each arm is its version's whole stack in the twin (its own synthesized Dev "
            f"stage, twin and runtime), the tiny model on llama.cpp at {results['threads']} "
            f"thread, {results['tokens']} tokens per reply, {results['pairs']} replies per arm "
            "in turning order. Added: the client's time to first text less the engine's own "
            "prefill and first token. The difference is the median of each round's difference "
            "from `before`.",
            "",
            "| arm | code | added, median | less before | runs (ms) |",
            "| --- | --- | ---: | ---: | --- |",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare against")
    parser.add_argument("--pairs", type=int, default=20, help="replies per arm (default 20)")
    parser.add_argument("--busy", type=int, default=1, help="spinning processes (default 1)")
    parser.add_argument(
        "--variant", nargs="+", metavar="KEY=VALUE", help="a third arm: this tree with context"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = parser.parse_args(argv)
    arms = [prepare_before(args.before), prepare_after()]
    if args.variant:
        arms.append(prepare_variant(args.variant))
    results = measure(arms, pairs=args.pairs, busy_processes=args.busy)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "first_token_ab.json").write_text(json.dumps(results, indent=2) + "\n")
    text = render(results)
    (args.out / "first_token_ab.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
