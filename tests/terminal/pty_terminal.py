"""`python -m terminal_client …` on a pseudo-terminal, driven as a person would: typed
lines, Ctrl-C through the terminal's own line discipline (SIGINT to the foreground
process group), and the screen's text as it arrives."""

from __future__ import annotations

import codecs
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The child makes the pty its controlling terminal, so ^C typed into it is a SIGINT.
LAUNCHER = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'terminal_client', *sys.argv[1:]])"
)
ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>])")
END = re.compile(r"\[(end|length|stop|stopped)( ·[^\]\n]*)?\]\n")


class Terminal:
    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            env={**os.environ, "TERM": "dumb"},
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.screen = ""  # all output so far, escapes removed, line ends as "\n"
        self.pos = 0  # where the next `expect` looks from

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False once the terminal has closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every process on the terminal has gone
            return False
        if not data:
            return False
        text = self._decoder.decode(data)
        self.screen = ESCAPES.sub("", (self.screen + text).replace("\r\n", "\n"))
        return True

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 120) -> re.Match[str]:
        """The first match of `pattern` after the last one; the screen so far if none comes."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.screen, self.pos)
            if found:
                self.pos = found.end()
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                found = regex.search(self.screen, self.pos)
                if found:
                    self.pos = found.end()
                    return found
                raise AssertionError(f"no {regex.pattern!r} on the screen:\n{self.screen}")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)  # keep draining: a full terminal buffer would block it
        status = self.proc.wait(max(0.1, deadline - time.monotonic()))
        while self._read(0.05):
            pass
        return status

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
