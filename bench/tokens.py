"""Count the tokens in a piece of delivered text with the model's own tokenizer."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """llama.cpp warns on stderr from C about a vocabulary-only load; keep the bench quiet."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def token_counter(model_path: str) -> Callable[[str], int]:
    """`count(text)`: tokens in `text`, from the GGUF's vocabulary alone (no weights)."""
    import llama_cpp

    with _native_stderr_silenced():
        vocab = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)

    def count(text: str) -> int:
        if not text:
            return 0
        return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    return count
