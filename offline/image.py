"""A container image function's file system, laid out on this machine from its Dockerfile.

There is no Docker engine here, so the twin does what `docker build` would do for a
Lambda image, as far as a Python function needs it, and keeps the result in a cache:

- `FROM public.ecr.aws/lambda/python:*` (any stage name): the base image's environment
  (`LAMBDA_TASK_ROOT=/var/task`, ...) and its Python runtime, boto3 included
  (`offline.runtimes`). Another base image is refused with the reason.
- `ARG`, `ENV`, `WORKDIR`, `CMD`, `ENTRYPOINT`: as Docker reads them, `${VAR}` expanded.
- `COPY [--from=stage] [--chmod=..] SRC... DEST`: a link in the laid-out root to the
  build context's file (or to the other stage's folder), so a multi-GB model is never
  copied; `--chmod` is honoured by refusing a file the function's user could not read.
- `RUN pip install ... --target DIR`: run with this machine's pip and the stage's `ENV`
  (so `CMAKE_ARGS` compiles native code with the image's flags), into a folder keyed by
  what decides its content, like a Docker layer. Other `RUN`s (the system package
  manager) are skipped and listed: this machine's system libraries stand in for them.

Paths inside the image (`/opt/models/x.gguf`) map to the laid-out root as a bind mount
would (`ImageLayout.host_path`), and environment values naming them are mapped too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

log = logging.getLogger("offline")

# What AWS's Lambda base images for Python set before the Dockerfile's first line.
_LAMBDA_PYTHON_BASE = re.compile(r"^public\.ecr\.aws/lambda/python:(?P<version>[0-9.]+)")
_BASE_ENVIRONMENT = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
_BASE_WORKDIR = "/var/task"


class ImageError(Exception):
    """The Dockerfile asks for something the twin cannot lay out (the message says what)."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), rest.strip(), start))
    return instructions


def _expand(text: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, text)


def _pairs(arguments: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` or the legacy `ENV A 1`."""
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def _exec_form(arguments: str) -> list[str]:
    arguments = arguments.strip()
    if arguments.startswith("["):
        return [str(part) for part in json.loads(arguments)]
    return ["/bin/sh", "-c", arguments]


@dataclass
class ImageLayout:
    """The laid-out image: a root folder standing for `/`, and what the image declares."""

    root: Path
    environment: dict[str, str] = field(default_factory=dict)
    workdir: str = _BASE_WORKDIR
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    python_version: str = ""
    skipped: list[str] = field(default_factory=list)

    def host_path(self, image_path: str) -> Path:
        return self.root / PurePosixPath(image_path).relative_to("/")

    @property
    def task_root(self) -> Path:
        return self.host_path(self.environment.get("LAMBDA_TASK_ROOT", _BASE_WORKDIR))

    @property
    def handler(self) -> str:
        """The image's `CMD`: for AWS's base images, the handler."""
        if not self.command:
            raise ImageError("the image has no CMD, so Lambda has no handler to run")
        return self.command[0]

    def map_environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        """Values that name a path inside the image point at the laid-out root instead."""
        mapped = {}
        for key, value in environment.items():
            if value.startswith("/") and self.host_path(value).exists():
                mapped[key] = str(self.host_path(value))
            else:
                mapped[key] = value
        return mapped


@dataclass
class _Stage:
    name: str
    root: Path
    variables: dict[str, str]
    environment: dict[str, str]
    workdir: str
    python_version: str
    key: str
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)


def build_image(
    context: Path,
    *,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    cache_dir: Path,
    layout_root: Path,
) -> ImageLayout:
    """Lay out the image that `docker build context` would build (see the module doc).

    `layout_root` (a fresh folder the caller owns) receives one folder per stage, mostly
    links; `cache_dir` keeps the expensive layers (`pip install`) between runs.
    """
    context = context.resolve()
    text = (context / dockerfile).read_text()
    args = dict(build_args or {})
    global_args: dict[str, str] = {}
    stages: dict[str, _Stage] = {}
    stage: _Stage | None = None
    skipped: list[str] = []
    shutil.rmtree(layout_root, ignore_errors=True)
    for index, ins in enumerate(parse_dockerfile(text)):
        if ins.keyword == "ARG":
            name, _, default = ins.arguments.partition("=")
            if stage is None:
                global_args[name] = args.get(name, _expand(default, global_args))
            elif name in args:
                stage.variables[name] = args[name]
            else:  # a global ARG is seen in a stage only when the stage names it again
                variables = {**stage.variables, **stage.environment}
                stage.variables[name] = (
                    _expand(default, variables) if default else global_args.get(name, "")
                )
            continue
        if ins.keyword == "FROM":
            stage = _from(ins, global_args, stages, layout_root, index)
            stages[stage.name] = stage
            continue
        if stage is None:
            raise ImageError(f"line {ins.line}: {ins.keyword} before FROM")
        variables = {**stage.variables, **stage.environment}
        if ins.keyword == "ENV":
            for name, value in _pairs(ins.arguments).items():
                stage.environment[name] = _expand(value, variables)
        elif ins.keyword == "WORKDIR":
            stage.workdir = str(PurePosixPath(stage.workdir) / _expand(ins.arguments, variables))
        elif ins.keyword == "CMD":
            stage.command = _exec_form(_expand(ins.arguments, variables))
        elif ins.keyword == "ENTRYPOINT":
            stage.entrypoint = _exec_form(_expand(ins.arguments, variables))
        elif ins.keyword == "COPY":
            _copy(ins, stage, stages, context, variables)
        elif ins.keyword == "RUN":
            done = _run(ins, stage, context, variables, cache_dir)
            if not done:
                skipped.append(f"{stage.name}: RUN {_expand(ins.arguments, variables)}")
        elif ins.keyword in ("LABEL", "EXPOSE", "USER", "SHELL", "HEALTHCHECK", "VOLUME"):
            continue
        else:
            raise ImageError(f"line {ins.line}: {ins.keyword} is not understood by the twin")
    if stage is None:
        raise ImageError(f"{dockerfile} has no FROM")
    return ImageLayout(
        root=stage.root,
        environment=dict(stage.environment),
        workdir=stage.workdir,
        command=stage.command,
        entrypoint=stage.entrypoint,
        python_version=stage.python_version,
        skipped=skipped,
    )


def _from(
    ins: Instruction,
    global_args: Mapping[str, str],
    stages: Mapping[str, _Stage],
    layout_root: Path,
    index: int,
) -> _Stage:
    parts = _expand(ins.arguments, global_args).split()
    parts = [p for p in parts if not p.startswith("--platform")]
    base = parts[0]
    name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"stage{index}"
    root = layout_root / name
    root.mkdir(parents=True)
    if base in stages:
        parent = stages[base]
        shutil.copytree(parent.root, root, symlinks=True, dirs_exist_ok=True)
        return _Stage(
            name,
            root,
            {},
            dict(parent.environment),
            parent.workdir,
            parent.python_version,
            parent.key,
        )
    match = _LAMBDA_PYTHON_BASE.match(base)
    if not match:
        raise ImageError(
            f"line {ins.line}: FROM {base}: the twin lays out AWS's Lambda Python base "
            "images only (public.ecr.aws/lambda/python:*)"
        )
    environment = dict(_BASE_ENVIRONMENT)
    (root / environment["LAMBDA_TASK_ROOT"].lstrip("/")).mkdir(parents=True)
    key = hashlib.sha256(base.encode()).hexdigest()
    return _Stage(name, root, {}, environment, _BASE_WORKDIR, match["version"], key)


def _copy(
    ins: Instruction,
    stage: _Stage,
    stages: Mapping[str, _Stage],
    context: Path,
    variables: Mapping[str, str],
) -> None:
    tokens = shlex.split(_expand(ins.arguments, variables))
    flags = {t.split("=", 1)[0]: t.split("=", 1)[-1] for t in tokens if t.startswith("--")}
    paths = [t for t in tokens if not t.startswith("--")]
    *sources, dest = paths
    source_root = stages[flags["--from"]].root if "--from" in flags else context
    into_dir = dest.endswith("/") or len(sources) > 1
    dest_path = PurePosixPath(dest if dest.startswith("/") else f"{stage.workdir}/{dest}")
    for source in sources:
        if "--from" in flags:
            found = source_root / source.lstrip("/")
            # A stage's folder may itself be a link to a cached layer.
            found = found.resolve()
        else:
            found = (context / source).resolve()
            if not found.is_relative_to(context):
                raise ImageError(f"line {ins.line}: COPY {source} is outside the build context")
        if not found.exists():
            raise ImageError(
                f"line {ins.line}: COPY {source}: no such file in the build context "
                f"({found}); docker build would fail here too"
            )
        if "--chmod" not in flags and found.is_file() and not os.stat(found).st_mode & 0o004:
            raise ImageError(
                f"line {ins.line}: COPY {source}: the file is not world-readable "
                f"({oct(found.stat().st_mode & 0o777)}) and COPY keeps its mode, so Lambda's "
                "non-root user could not read it (use COPY --chmod)"
            )
        target = stage.root / dest_path.relative_to("/")
        if found.is_dir():
            # Docker copies a folder's contents, not the folder itself.
            target.mkdir(parents=True, exist_ok=True)
            for child in found.iterdir():
                _link(child, target / child.name)
        else:
            if into_dir:
                target.mkdir(parents=True, exist_ok=True)
                target = target / found.name
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
            _link(found, target)
        stage.key = hashlib.sha256(
            f"{stage.key}|COPY|{source}|{_digest(found)}".encode()
        ).hexdigest()


def _link(source: Path, target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        if source.is_dir():
            for child in source.iterdir():
                _link(child, target / child.name)
            return
        shutil.rmtree(target)
    target.symlink_to(source.resolve())


def _digest(path: Path) -> str:
    """What decides a copied path's content: small files by content (CDK re-stages assets
    with new times on every synth), large ones (models) by size and time."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(str(file.relative_to(path) if file != path else "").encode())
        if stat.st_size <= _CONTENT_HASHED_BYTES:
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


_CONTENT_HASHED_BYTES = 16 * 1024 * 1024


def _run(
    ins: Instruction,
    stage: _Stage,
    context: Path,
    variables: Mapping[str, str],
    cache_dir: Path,
) -> bool:
    """Run a `pip install ... --target DIR`; report anything else as skipped."""
    command = _expand(ins.arguments, {**variables, **stage.environment})
    tokens = shlex.split(command)
    if not (tokens[:2] == ["pip", "install"] or tokens[1:4] == ["-m", "pip", "install"]):
        return False
    args = tokens[tokens.index("install") + 1 :]
    if "--target" not in args and "-t" not in args:
        raise ImageError(f"line {ins.line}: only `pip install --target DIR` is laid out")
    flag = "--target" if "--target" in args else "-t"
    target = args[args.index(flag) + 1]
    mapped: list[str] = []
    inputs: list[str] = []
    for arg in args:
        if arg.startswith("/") and arg != target:
            host = stage.root / arg.lstrip("/")
            if host.exists():
                inputs.append(host.read_text() if host.is_file() else _digest(host))
                arg = str(host)
        mapped.append(arg)
    key = hashlib.sha256(
        json.dumps([stage.key, command, stage.environment, inputs, sys.version]).encode()
    ).hexdigest()[:20]
    layer = cache_dir / "layers" / key
    with _locked(layer):
        if not (layer / ".complete").exists():
            shutil.rmtree(layer, ignore_errors=True)
            host_target = layer / "content"
            mapped[mapped.index(target)] = str(host_target)
            log.info("image: %s (once; cached in %s)", command, layer)
            result = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *mapped],
                env={**os.environ, **stage.environment},
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ImageError(
                    f"line {ins.line}: `{command}` failed:\n{result.stdout[-2000:]}"
                    f"{result.stderr[-4000:]}"
                )
            (layer / ".complete").touch()
    target_path = stage.root / target.lstrip("/")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    if target_path.is_dir() and not target_path.is_symlink():
        shutil.rmtree(target_path)
    elif target_path.is_symlink() or target_path.exists():
        target_path.unlink()
    target_path.symlink_to(layer / "content")
    stage.key = hashlib.sha256(f"{stage.key}|RUN|{key}".encode()).hexdigest()
    return True


@contextlib.contextmanager
def _locked(path: Path):  # noqa: ANN202 - a context manager
    """One builder per folder at a time, across processes (parallel test sessions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
