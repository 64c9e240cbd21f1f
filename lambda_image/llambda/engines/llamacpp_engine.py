"""llama.cpp (llama-cpp-python) for GGUF models: the same image runs an open model with
no AccessKey, and tests generate for real with a tiny one.

The prompt is rendered with the GGUF's own chat template (its `tokenizer.chat_template`
metadata, through llama-cpp-python's Jinja2 formatter, as `create_chat_completion` does),
and tokens are generated one at a time so a stop is honoured before the next token, usage
counts are exact, and `end` (end of generation) is told apart from `stop` (a stop
sequence matched; its text is not included in the reply).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from typing import Any

from llambda.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    SerialEngine,
)
from llambda.history import Message

# llama.cpp's LLAMA_DEFAULT_SEED: draw a new random seed.
RANDOM_SEED = 0xFFFFFFFF

# Context window: room for the kept history, the longest prompt and the longest reply
# (the latest exchanges that fit are kept: `SerialEngine.fit`).
DEFAULT_N_CTX = 8192
# llama-cpp-python's own sampling defaults, used when the client sets none.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95


class LlamaCppEngine(SerialEngine):
    kind = "llamacpp"

    def __init__(self, llm: Any, formatter: Any) -> None:
        import llama_cpp

        self._llm = llm
        self._formatter = formatter
        super().__init__()
        vocab = llm._model.vocab

        def is_eog(token: int) -> bool:  # end of generation: EOS, EOT and the like
            return bool(llama_cpp.llama_vocab_is_eog(vocab, token))

        self._is_eog = is_eog

    @classmethod
    def load(
        cls, model_path: str, *, n_ctx: int | None = None, n_threads: int | None = None
    ) -> LlamaCppEngine:
        if not os.path.isfile(model_path):
            raise EngineError(f"The model file {model_path} does not exist.")
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = n_threads or int(os.environ.get("LLAMA_THREADS") or 0) or os.cpu_count() or 1
        n_ctx = n_ctx or int(os.environ.get("LLAMA_N_CTX") or 0) or DEFAULT_N_CTX
        try:
            llm = llama_cpp.Llama(
                model_path=model_path,
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise EngineError(
                f"llama.cpp could not load {os.path.basename(model_path)}."
            ) from error
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineError("The GGUF model has no chat template, so it cannot chat.")
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llm.detokenize([eos], special=True).decode(errors="replace"),
            bos_token=llm.detokenize([bos], special=True).decode(errors="replace"),
            stop_token_ids=[eos],
        )
        return cls(llm, formatter)

    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    def tokenize_messages(self, messages: list[Message]) -> list[int]:
        """The prompt tokens for `messages`, rendered with the model's chat template."""
        rendered = self._formatter(messages=messages)
        return list(
            self._llm.tokenize(
                rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
            )
        )

    def _engine_error(self, error: Exception) -> EngineError | None:
        if isinstance(error, (RuntimeError, ValueError, OSError)):
            return EngineError("llama.cpp failed while generating.")
        return None

    def _generate(
        self,
        request: GenerationRequest,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationResult:
        fitted = self.fit(request)
        tokens, max_tokens = fitted.tokens, fitted.max_tokens
        options = request.options
        # Every reply sets the seed: a seeded reply must not fix the next unseeded one's.
        self._llm.set_seed(RANDOM_SEED if options.seed is None else options.seed)
        if options.seed is not None:
            # The same draws need the same logits: evaluating a cached prefix and then the
            # rest moves them by rounding, so a seeded reply evaluates its whole prompt.
            self._llm.reset()

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        holdback = max((len(s) for s in options.stop), default=1) - 1
        pending = ""  # decoded text held back while it may begin a stop sequence
        out: list[str] = []

        def emit(text: str) -> None:
            if text:
                out.append(text)
                on_text(text)

        reason = "length"
        completion_tokens = 0
        if max_tokens > 0:
            for token in self._llm.generate(
                tokens,
                temp=DEFAULT_TEMPERATURE if options.temperature is None else options.temperature,
                top_p=DEFAULT_TOP_P if options.top_p is None else options.top_p,
                reset=True,
            ):
                if self._interrupted.is_set() or should_stop():
                    reason = "stopped"
                    break
                if self._is_eog(token):
                    reason = "end"
                    break
                completion_tokens += 1
                pending += decoder.decode(self._llm.detokenize([token]))
                if options.stop:
                    hit = _first_stop(pending, options.stop)
                    if hit is not None:
                        emit(pending[:hit])
                        pending = ""
                        reason = "stop"
                        break
                    cut = max(len(pending) - holdback, 0)
                    emit(pending[:cut])
                    pending = pending[cut:]
                else:
                    emit(pending)
                    pending = ""
                if completion_tokens >= max_tokens:
                    reason = "length"
                    break
        emit(pending + decoder.decode(b"", final=True))
        return GenerationResult(
            reason=reason,
            prompt_tokens=len(tokens),
            completion_tokens=completion_tokens,
            text="".join(out),
        )


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None
