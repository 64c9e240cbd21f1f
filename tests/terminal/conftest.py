"""The servers the terminal tests talk to: the twin of the Dev stage with the real tiny
model (the session's twin, `cloud` in tests/conftest.py), or the scripted fake for
protocol handling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.terminal.backends import Backend
from tests.terminal.fake_server import FakeServer
from tests.terminal.pty_terminal import Terminal

# The fake's reply: long enough (2 s) to press Ctrl-C or cut the line in the middle.
FAKE_WORDS = tuple(f"w{n} " for n in range(40))


@pytest.fixture(params=["fake", "twin"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "twin":
        yield Backend("twin", request.getfixturevalue("cloud").ws_url)
        return
    with FakeServer(words=FAKE_WORDS, delta_s=0.05) as fake:
        yield Backend("fake", fake.url)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """Terminals a test opens (`terminals.append(Terminal(...))`), all closed after it."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()
