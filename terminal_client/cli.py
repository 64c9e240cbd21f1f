"""The interactive chat: `python -m terminal_client URL [--token T]`.

Type a message and the reply streams in as it comes. Ctrl-C stops a reply; two in a row
leave. A connection that drops mid-reply is opened again and the reply goes on where the
terminal left it (the server keeps it for 60 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from llambda.contract import ErrorCode
from terminal_client.client import ChatClient, ConnectionLost, HandshakeRefused, ServerError
from terminal_client.export import write_export
from terminal_client.messages import without_query

PROMPT = "you> "
TOKEN_ENV = "LLAMBDA_TOKEN"
HELP = """\
Type a message to ask; the reply streams in. Ctrl-C stops a reply; twice in a row leaves.
  /new          start a new conversation (the current one stays on the server)
  /resume ID    go back to a conversation by its id (shown when it starts)
  /export FILE  save this conversation: Markdown, or JSON when FILE ends in .json
  /forget       delete this conversation on the server
  /id           show this conversation's id (keep it private: it grants access)
  /quit         leave (so do Ctrl-D and two Ctrl-C)"""
# After a `stop`, the next `chat` may be `busy` for the moment the old reply needs to end.
BUSY_RETRIES = 12
BUSY_WAIT_S = 0.25


class Leave(Exception):
    """The user asked to leave."""


class Chat:
    """The read-ask-stream loop over one `ChatClient`."""

    def __init__(
        self, client: ChatClient, *, options: dict[str, Any] | None = None, out: TextIO = sys.stdout
    ) -> None:
        self.client = client
        self.options = options or None
        self.out = out
        self.ctrl_c = 0  # Ctrl-C presses in a row; typing a line starts the count again
        self._stop_sent = False
        self._at_line_start = True

    # -- output -----------------------------------------------------------------------
    def write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self._at_line_start = text.endswith("\n")

    def note(self, text: str) -> None:
        """A line of the client's own, never run into the reply's text."""
        self.write(("" if self._at_line_start else "\n") + text + "\n")

    # -- the loop ---------------------------------------------------------------------
    def run(self, conversation: str | None = None) -> int:
        self.note(
            f"llambda chat on {without_query(self.client.url)}: type a message, "
            "/help for commands. Ctrl-C stops a reply; twice in a row leaves."
        )
        try:
            if conversation:
                self.resume(conversation)
            while True:
                try:
                    line = input(PROMPT)
                except EOFError:
                    self.note("")
                    return 0
                except KeyboardInterrupt:
                    self._interrupted_at_prompt()
                    continue
                self._at_line_start = True
                self.ctrl_c = 0
                try:
                    self.handle(line.strip())
                except KeyboardInterrupt:  # while waiting for an answer, not a reply
                    self._interrupted_at_prompt()
        except Leave:
            return 0

    def _interrupted_at_prompt(self) -> None:
        self.ctrl_c += 1
        if self.ctrl_c >= 2:
            self.note("")
            raise Leave
        self.note("\n(Ctrl-C again or /quit to leave)")

    def handle(self, line: str) -> None:
        if not line:
            return
        if not line.startswith("/"):
            self.ask(line)
            return
        command, _, arg = line.partition(" ")
        arg = arg.strip()
        if command == "/quit":
            raise Leave
        if command == "/help":
            self.note(HELP)
        elif command == "/new":
            self.client.new_conversation()
            self.note("[a new conversation starts with your next message]")
        elif command == "/resume" and arg:
            self.resume(arg)
        elif command == "/export" and arg:
            self.export(Path(arg).expanduser())
        elif command == "/forget":
            self.forget()
        elif command == "/id":
            self.note(f"[conversation {self.client.conversation or '(none yet)'}]")
        else:
            self.note(f"[unknown command {line!r}; /help lists them]")

    # -- commands ---------------------------------------------------------------------
    def ask(self, prompt: str) -> None:
        for attempt in range(BUSY_RETRIES + 1):
            try:
                self.client.chat(prompt, self.options)
            except (ConnectionLost, ServerError, TimeoutError) as error:
                self.note(f"[could not send: {error}]")
                return
            final = self._stream(hide_busy=attempt < BUSY_RETRIES)
            if not _is_busy(final):
                return
            time.sleep(BUSY_WAIT_S)

    def resume(self, conversation: str) -> None:
        try:
            attached = self.client.attach(conversation)
        except ServerError as error:
            self.note(f"[{error.code}: {error.text}]")
            return
        except (ConnectionLost, TimeoutError) as error:
            self.note(f"[could not resume: {error}]")
            return
        turns = attached.get("turns") or []
        self.note(f"[conversation {conversation}: {len(turns)} earlier messages]")
        for turn in turns:
            if turn.get("role") == "user":
                self.note(PROMPT + str(turn.get("content", "")))
            else:
                self.note(str(turn.get("content", "")))
        if attached.get("interrupted"):
            self.note("[its last reply was cut short: no client came back for it in time]")
        running = attached.get("reply")
        if isinstance(running, dict):
            self.note(PROMPT + str(running.get("prompt", "")))
            self._stream(hide_busy=False)

    def export(self, path: Path) -> None:
        try:
            turns = self.client.history()
        except (ConnectionLost, ServerError, TimeoutError) as error:
            self.note(f"[could not read the history: {error}]")
            return
        if not turns:
            self.note("[nothing to export yet]")
            return
        try:
            write_export(turns, path)
        except OSError as error:
            self.note(f"[could not write {path}: {error}]")
            return
        self.note(f"[wrote {len(turns)} messages to {path}]")

    def forget(self) -> None:
        if self.client.conversation is None:
            self.note("[no conversation to forget]")
            return
        try:
            self.client.forget()
        except (ConnectionLost, ServerError, TimeoutError) as error:
            self.note(f"[could not forget: {error}]")
            return
        self.note("[forgotten on the server; your next message starts a new conversation]")

    # -- one reply --------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Only counted here: the reply loop acts on it (a `send` from inside a signal
        # handler could interrupt another send).
        self.ctrl_c += 1

    def _tick(self) -> None:
        if self.ctrl_c >= 2:
            self.note("")
            raise Leave
        if self.ctrl_c == 1 and not self._stop_sent:
            self._stop_sent = True
            self.client.stop()

    def _stream(self, *, hide_busy: bool) -> dict[str, Any] | None:
        """Print the awaited reply as it comes; its last message."""
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        self._stop_sent = False
        final = None
        saved = _echo_off()
        try:
            for message in self.client.reply(tick=self._tick):
                final = message
                kind = message.get("type")
                if kind == "conversation":
                    self.note(f"[conversation {message.get('id')}]")
                elif kind == "status" and message.get("state") == "loading":
                    self.note("[loading the model…]")
                elif kind == "delta":
                    self.write(str(message.get("text", "")))
                elif kind == "done":
                    self._ended(message)
                elif kind == "error":
                    if hide_busy and _is_busy(message) and not self.client.reply_text:
                        return message
                    self._failed(message)
                elif kind == "detached":
                    self.note(
                        "[another connection took this conversation: "
                        f"/resume {self.client.conversation} to take it back]"
                    )
        except ConnectionLost as error:
            hint = f"; /resume {self.client.conversation} to try again" * bool(
                self.client.conversation
            )
            self.note(f"[connection lost: {error}{hint}]")
        finally:
            signal.signal(signal.SIGINT, previous)
            _echo_restore(saved)
        if self.ctrl_c >= 2:  # the second came as the reply ended
            self.note("")
            raise Leave
        return final

    def _ended(self, done: dict[str, Any]) -> None:
        if done.get("from_history"):
            if done.get("interrupted"):
                self.note("[the connection dropped; the server cut the reply short meanwhile]")
            else:
                self.note("[the connection dropped; the reply finished meanwhile]")
            return
        if self.client.resumes:
            self.note("[the connection dropped mid-reply; resumed where it left off]")
        parts = [str(done.get("reason"))]
        tokens = (done.get("usage") or {}).get("completion_tokens")
        if tokens is not None:
            parts.append(f"{tokens} tokens")
        ttft = (done.get("timing") or {}).get("ttft_ms")
        if isinstance(ttft, int | float):
            parts.append(f"first token {ttft:.0f} ms")
        self.note(f"[{' · '.join(parts)}]")

    def _failed(self, error: dict[str, Any]) -> None:
        code = error.get("code")
        if code == ErrorCode.NOT_ATTACHED:
            self.note(
                "[this conversation is attached to another connection: "
                f"/resume {self.client.conversation} to take it here]"
            )
        elif code == ErrorCode.NOT_FOUND:
            self.client.new_conversation()
            self.note("[that conversation is gone (expired or forgotten); /new was done]")
        elif code == ErrorCode.CONTEXT_LENGTH_EXCEEDED:
            self.note(
                f"[too long for the model: {error.get('message', '')} "
                "The conversation is unchanged.]"
            )
        elif code in (ErrorCode.BUDGET_EXHAUSTED, ErrorCode.BUDGET_CUT_SHORT):
            what = "cut short: " if code == ErrorCode.BUDGET_CUT_SHORT else ""
            resets = error.get("resets_at")
            when = f"resets {resets}" if resets else "/new starts a conversation with its own"
            self.note(f"[{what}the {error.get('scope', '')} token budget is used up; {when}]")
        elif code == ErrorCode.GENERATION_OFF:
            self.note(f"[replies are turned off on this server: {error.get('message', '')}]")
        else:
            self.note(f"[error {code}: {error.get('message', '')}]")


def _echo_off() -> list[Any] | None:
    """Keys typed during a reply are not echoed into its text (nor ^C): readline shows
    what was typed ahead once it prompts. The terminal's settings before, to restore."""
    if not sys.stdin.isatty():
        return None
    import termios

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    return saved


def _echo_restore(saved: list[Any] | None) -> None:
    if saved is not None:
        import termios

        termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, saved)


def _is_busy(message: dict[str, Any] | None) -> bool:
    return (
        message is not None
        and message.get("type") == "error"
        and message.get("code") == ErrorCode.BUSY
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m terminal_client", description=__doc__.splitlines()[0]
    )
    parser.add_argument("url", help="the stage's WebSocket URL, e.g. wss://…/dev")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"the stage's token, where it requires one (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--conversation", metavar="ID", help="resume this conversation")
    parser.add_argument("--max-tokens", type=int, help="reply length cap (the stage's default)")
    parser.add_argument("--temperature", type=float, help="0 … 2 (the engine's default)")
    parser.add_argument("--origin", help="an Origin header to send (not needed: not a browser)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = {
        key: value
        for key, value in (("max_tokens", args.max_tokens), ("temperature", args.temperature))
        if value is not None
    }
    client = ChatClient(args.url, token=args.token, origin=args.origin)
    try:
        client.connect()
    except HandshakeRefused as error:
        hint = {
            401: f"the stage requires a token: --token T or ${TOKEN_ENV}",
            403: "the token (or the Origin) was refused",
        }.get(error.status, "")
        print(f"{error}{'; ' + hint if hint else ''}", file=sys.stderr)
        return 2
    except ConnectionLost as error:
        print(f"cannot reach {without_query(client.url)}: {error}", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        import readline  # noqa: F401  (line editing and history for input())
    try:
        return Chat(client, options=options).run(args.conversation)
    finally:
        client.close()
