"""The chat in a pseudo-terminal, as a person uses it: against the twin (the real tiny
model), and against the scripted fake (the front end's protocol handling, quickly).

What is printed of a reply is compared with what the server kept of it (`history`): the
whole reply, once, with nothing lost or doubled, however it was interrupted.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.terminal.backends import Backend
from tests.terminal.pty_terminal import END, Terminal
from tests.terminal.tcp_proxy import TcpProxy

LONG = "Write a long story about a lighthouse keeper and her cat, with many chapters."
LONG_TOKENS = "200"
NOTE_LINE = re.compile(r"\[[^\n]*\]\n")
CONVERSATION = re.compile(r"\[conversation (\S+)\]\n")

pytestmark = pytest.mark.timeout(600)


def start(terminals: list[Terminal], url: str, *args: str) -> Terminal:
    terminal = Terminal(url, *args)
    terminals.append(terminal)
    terminal.expect(r"/help for commands")
    return terminal


def command(terminal: Terminal, line: str) -> None:
    """Type `line` once the client prompts for it (typed earlier, the terminal itself
    would echo it too)."""
    terminal.expect("you> ")
    terminal.type(line)
    terminal.expect(re.escape(line) + r"\n")


def ask(terminal: Terminal, prompt: str) -> int:
    """Type `prompt`; where its reply starts on the screen."""
    command(terminal, prompt)
    return terminal.pos


def printed_reply(terminal: Terminal, start: int, end: int) -> str:
    """The reply's text between `start` and its end marker, without the client's notes."""
    text = terminal.screen[start:end]
    while found := NOTE_LINE.match(text):  # [conversation …], [loading the model…]
        text = text[found.end() :]
    resumed = "[the connection dropped mid-reply; resumed where it left off]\n"
    return text.removesuffix(resumed)


def wait_for_text(terminal: Terminal, start: int, timeout: float = 180) -> str:
    """The screen from `start` once some reply text is on it (before the reply ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        terminal._read(0.05)
        shown = printed_reply(terminal, start, len(terminal.screen))
        if shown.strip():
            return terminal.screen[start:]
    raise AssertionError(f"no reply text:\n{terminal.screen}")


def same_text(printed: str, kept: str) -> bool:
    # The client ends the reply's line before its end marker when the text did not.
    return printed in (kept, kept + "\n")


def last_reply(backend, conversation: str) -> str:
    turns = backend.history(conversation)
    assert turns[-1]["role"] == "assistant"
    return turns[-1]["content"]


def test_a_reply_streams_onto_the_terminal_as_it_comes(backend, terminals):
    terminal = start(terminals, backend.url, "--max-tokens", "96")
    begin = ask(terminal, "Tell me about the sea.")
    conversation = terminal.expect(CONVERSATION).group(1)
    early = wait_for_text(terminal, begin)
    assert not END.search(early), "the reply appeared only once it had ended"
    end = terminal.expect(END)
    assert same_text(printed_reply(terminal, begin, end.start()), last_reply(backend, conversation))


def test_new_starts_a_second_conversation_and_export_writes_it(backend, terminals, tmp_path):
    terminal = start(terminals, backend.url, "--max-tokens", "24")
    ask(terminal, "Name a colour.")
    first = terminal.expect(CONVERSATION).group(1)
    terminal.expect(END)
    command(terminal, "/new")
    terminal.expect(r"\[a new conversation starts with your next message\]")
    begin = ask(terminal, "Name a fruit.")
    second = terminal.expect(CONVERSATION).group(1)
    end = terminal.expect(END)
    assert second != first
    reply = printed_reply(terminal, begin, end.start())
    for name in ("chat.md", "chat.json"):
        command(terminal, f"/export {tmp_path / name}")
        terminal.expect(r"\[wrote 2 messages to ")
    turns = json.loads((tmp_path / "chat.json").read_text())["turns"]
    assert turns == backend.history(second)
    assert [t["role"] for t in turns] == ["user", "assistant"]
    assert turns[0]["content"] == "Name a fruit." and same_text(reply, turns[1]["content"])
    markdown = (tmp_path / "chat.md").read_text()
    assert "## You\n\nName a fruit.\n\n## Assistant\n\n" + turns[1]["content"] in markdown
    assert "Name a colour." not in markdown


def test_ctrl_c_stops_the_reply_and_a_second_ctrl_c_leaves(backend, terminals):
    terminal = start(terminals, backend.url, "--max-tokens", LONG_TOKENS)
    begin = ask(terminal, LONG)
    conversation = terminal.expect(CONVERSATION).group(1)
    wait_for_text(terminal, begin)
    terminal.ctrl_c()
    end = terminal.expect(r"\[stopped( ·[^\]\n]*)?\]\n")
    assert same_text(printed_reply(terminal, begin, end.start()), last_reply(backend, conversation))
    terminal.expect("you> ")
    terminal.ctrl_c()
    assert terminal.exit_status() == 0


def test_two_ctrl_c_during_a_reply_leave(backend, terminals):
    terminal = start(terminals, backend.url, "--max-tokens", LONG_TOKENS)
    begin = ask(terminal, LONG)
    wait_for_text(terminal, begin)
    terminal.ctrl_c()
    time.sleep(0.05)  # two signals at once would be one to the process
    terminal.ctrl_c()
    assert terminal.exit_status() == 0


def test_a_drop_mid_reply_is_survived_by_resuming_where_it_was(backend, terminals):
    proxy = TcpProxy.before(backend.url)
    try:
        terminal = start(terminals, proxy.url(backend.url), "--max-tokens", LONG_TOKENS)
        begin = ask(terminal, LONG)
        conversation = terminal.expect(CONVERSATION).group(1)
        wait_for_text(terminal, begin)
        proxy.cut()
        end = terminal.expect(END)
        assert proxy.accepted == 2  # the first connection, and the one it resumed on
    finally:
        proxy.close()
    screen = terminal.screen[begin : end.start()]
    assert "[the connection dropped mid-reply; resumed where it left off]" in screen
    assert same_text(printed_reply(terminal, begin, end.start()), last_reply(backend, conversation))


def test_resume_by_id_shows_the_conversation_so_far(backend, terminals):
    terminal = start(terminals, backend.url, "--max-tokens", "24")
    begin = ask(terminal, "Name an animal.")
    conversation = terminal.expect(CONVERSATION).group(1)
    end = terminal.expect(END)
    reply = printed_reply(terminal, begin, end.start())
    command(terminal, "/quit")
    assert terminal.exit_status() == 0

    later = start(terminals, backend.url)
    command(later, f"/resume {conversation}")
    later.expect(re.escape(f"[conversation {conversation}: 2 earlier messages]\n"))
    shown = later.expect(r"you> Name an animal\.\n([\s\S]*?)you> ")
    assert shown.group(1).rstrip("\n") == reply.rstrip("\n")


def test_the_gateways_age_cut_mid_reply_is_survived_by_resuming(cloud, terminals):
    # API Gateway closes every connection at 2 hours (1001 Going away); the twin's limit
    # is shrunk so that the cut falls in the middle of a long reply.
    backend = Backend("twin", cloud.ws_url)
    default_age = cloud.limits.max_connection_seconds
    cloud.limits.max_connection_seconds = 3.0
    try:
        terminal = start(terminals, cloud.ws_url, "--max-tokens", "400")
        begin = ask(terminal, LONG)
        conversation = terminal.expect(CONVERSATION).group(1)
        end = terminal.expect(END)
    finally:
        cloud.limits.max_connection_seconds = default_age
    screen = terminal.screen[begin : end.start()]
    assert "[the connection dropped mid-reply; resumed where it left off]" in screen
    assert same_text(printed_reply(terminal, begin, end.start()), last_reply(backend, conversation))
