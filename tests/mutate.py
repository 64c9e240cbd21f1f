"""Mutation testing of the runtime core: `make mutate` (docs/testing.md).

Each module is mutated with mutmut and run against its own test file only, so a mutant
counts as killed only when the tests written for that module catch it. mutmut names a
mutant by the file's path and puts the copy it mutates first on `sys.path`, so each run
works in `mutants/<module>/`, where `llambda` is the runtime package itself: the tests
then import `llambda.*` from mutmut's mutated copy, never from `lambda_image/`. It needs
TWIN_ASSEMBLY, as `make test` does (the Makefile sets it).

    python -m tests.mutate [protocol sender conversations router] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cpu_check import CHECKED, check

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "mutants"


@dataclass(frozen=True)
class Target:
    source: str  # inside lambda_image/
    tests: str


TARGETS = {
    "protocol": Target("llambda/protocol.py", "tests/runtime/test_protocol.py"),
    "sender": Target("llambda/sender.py", "tests/runtime/test_sender.py"),
    "conversations": Target("llambda/conversations.py", "tests/runtime/test_conversation_store.py"),
    "router": Target("llambda/handlers/router.py", "tests/runtime/test_router.py"),
}

# A hung mutant (a sender that never wakes) is stopped after (the tests' own time + 1 s)
# times this; mutmut's default of 15 spends minutes on each.
TIMEOUT_MULTIPLIER = 8

MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["llambda"]
only_mutate = [{source!r}]
pytest_add_cli_args_test_selection = [{tests!r}]
timeout_multiplier = {multiplier}
use_git_change_detection = false
process_isolation = "forkserver"
"""


@dataclass
class Outcome:
    name: str
    seconds: float
    status: dict[str, str] = field(default_factory=dict)  # mutant -> killed, survived, ...

    def count(self, status: str) -> int:
        return sum(1 for s in self.status.values() if s == status)

    @property
    def survivors(self) -> list[str]:
        return sorted(
            (m for m, s in self.status.items() if s not in ("killed", "timeout")),
            key=mutant_order,
        )


def mutant_order(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run mutmut in its own process group, and end whatever it leaves running: a worker
    stopped at its timeout may have left children of its tests behind."""
    command = [str(Path(sys.executable).parent / "mutmut"), *args]
    with subprocess.Popen(
        command,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def prepare(name: str, target: Target) -> Path:
    """A fresh working folder: the runtime package, the tests and a config for mutmut."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "llambda").symlink_to(REPO / "lambda_image" / "llambda")
    # mutmut runs pytest in work/mutants/, beside the package it mutated. The tests are
    # linked there, not copied: they run from where they are, with the project's pytest
    # settings (found above, in pyproject.toml) and paths.
    (work / "mutants").mkdir()
    (work / "mutants" / "tests").symlink_to(REPO / "tests")
    config = MUTMUT_CONFIG.format(
        source=target.source, tests=target.tests, multiplier=TIMEOUT_MULTIPLIER
    )
    (work / "pyproject.toml").write_text(config)
    return work


def run(name: str, workers: int) -> Outcome:
    target = TARGETS[name]
    work = prepare(name, target)
    print(f"{name}: {target.source} against {target.tests}", flush=True)
    started = time.monotonic()
    ran = mutmut(work, "run", "--max-children", str(workers))
    seconds = time.monotonic() - started
    (work / "run.log").write_text(ran.stdout)
    if ran.returncode != 0:
        tail = "\n".join(ran.stdout.splitlines()[-30:])
        raise SystemExit(f"mutmut failed on {name} (see {work / 'run.log'}):\n{tail}")
    outcome = Outcome(name, seconds)
    for line in mutmut(work, "results", "--all", "true").stdout.splitlines():
        if match := re.fullmatch(r"\s*(\S+__mutmut_\d+): (.+)", line):
            outcome.status[match[1]] = match[2].strip()
    if not outcome.status:
        raise SystemExit(f"mutmut reported no mutants for {name} (see {work / 'run.log'})")
    return outcome


def report(outcomes: list[Outcome]) -> str:
    """A table of counts, then each survivor's diff (for docs/testing.md's table)."""
    lines = [
        "| module | mutants | killed | timeout | survived | no tests | minutes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        lines.append(
            f"| {TARGETS[o.name].source} | {len(o.status)} | {o.count('killed')} "
            f"| {o.count('timeout')} | {o.count('survived')} | {o.count('no tests')} "
            f"| {o.seconds / 60:.1f} |"
        )
    for o in outcomes:
        for mutant in o.survivors:
            shown = mutmut(WORK / o.name, "show", mutant).stdout.strip()
            lines += ["", f"## {mutant}: {o.status[mutant]}", "", "```diff", shown, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.mutate", description=__doc__)
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.modules) - set(TARGETS)):
        parser.error(f"unknown module {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    names = args.modules or list(TARGETS)
    # Once here rather than in every one of the hundreds of test runs.
    if problem := check():
        raise SystemExit(problem)
    os.environ[CHECKED] = "1"
    # mutmut runs the tests from its own folder.
    if assembly := os.environ.get("TWIN_ASSEMBLY"):
        os.environ["TWIN_ASSEMBLY"] = str(Path(assembly).resolve())
    outcomes = [run(name, args.workers) for name in names]
    text = report(outcomes)
    (WORK / "report.md").write_text(text)
    print(text.split("\n\n", 1)[0])
    survivors = sum(len(o.survivors) for o in outcomes)
    print(f"{survivors} not killed; each with its diff in {WORK / 'report.md'}")
    print("docs/testing.md lists those kept and why.")


if __name__ == "__main__":
    main()
