"""What Lambda puts on a Python function's path besides its own code, laid out locally.

- The runtime's own packages: AWS's Python runtimes (and the `lambda/python` base
  images) ship boto3. Here that is this environment's pinned boto3 and what it needs,
  and nothing else: a handler that imports anything more must bring it.
- Public layers the template names by ARN: a layer AWS publishes is stood in for by the
  PyPI distribution it packages, at the version installed here. A layer the twin does
  not know is reported, and the function starts without it, as its imports then show.

Each is a folder of links to the installed packages (kept per process in a temp folder),
so the worker's `sys.path` holds exactly what Lambda's would.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The distributions AWS's Python runtimes and base images ship (boto3 and its needs).
RUNTIME_DISTRIBUTIONS = ("boto3",)


@dataclass(frozen=True)
class KnownLayer:
    pattern: re.Pattern[str]
    distribution: str
    source: str


# AWS's public layers, by the ARN's layer name (the account and version vary by region).
PUBLIC_LAYERS = (
    KnownLayer(
        re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:AWSLambdaPowertoolsPython"),
        "aws-lambda-powertools",
        "Powertools for AWS Lambda (Python), docs.powertools.aws.dev: 'Lambda Layer'",
    ),
)


def _closure(names: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions `names` need, themselves included (extras left out)."""
    seen: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = re.split(r"[ ;<>=!~\[(]", pending.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional or platform-specific need
        seen[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            marker_ok = True
            if ";" in requirement:
                from packaging.markers import Marker

                marker_ok = Marker(requirement.split(";", 1)[1]).evaluate()
            if marker_ok:
                pending.append(requirement)
    return list(seen.values())


def _top_level(dist: metadata.Distribution) -> set[str]:
    names: set[str] = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".data"):
            continue
        if len(parts) == 1 and not parts[0].endswith((".py", ".pth")):
            continue
        if parts[0].endswith(".pth"):
            continue
        names.add(parts[0])
    return names


def link_distributions(names: Iterable[str], into: Path) -> Path:
    """A folder of links to the installed files of `names` and all they need."""
    into.mkdir(parents=True, exist_ok=True)
    for dist in _closure(names):
        base = Path(str(dist.locate_file("")))
        for top in _top_level(dist):
            target = into / top
            if not target.exists():
                target.symlink_to(base / top)
    return into


class Runtimes:
    """Folders for the runtime's packages and for known public layers, made once."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="twin-runtime-"))
        self._made: dict[str, Path] = {}

    def _folder(self, key: str, names: Iterable[str]) -> Path:
        if key not in self._made:
            self._made[key] = link_distributions(names, self._dir / key)
        return self._made[key]

    def python_packages(self) -> Path:
        """The runtime's own packages (boto3 and its needs)."""
        return self._folder("runtime", RUNTIME_DISTRIBUTIONS)

    def layer(self, arn: str) -> tuple[Path | None, str]:
        """The folder standing in for a layer's `/opt/python`, or None, and what it is."""
        for known in PUBLIC_LAYERS:
            if known.pattern.match(arn):
                version = metadata.version(known.distribution)
                path = self._folder(known.distribution, [known.distribution])
                return path, f"{known.distribution} {version} from PyPI ({known.source})"
        return None, "not known to the twin"

    def close(self) -> None:
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)
