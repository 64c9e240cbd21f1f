"""picoLLM for `.pllm` models (the production default).

The prompt is built with picoLLM's own dialog class for the loaded model
(`pllm.get_dialog()`), and picoLLM's errors become an `EngineError` whose message says
what to fix, without the AccessKey. Activation errors get their own client code
(`ActivationError`): every new execution environment activates the AccessKey again, so
an account's activation allowance can run out while the stack itself is healthy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from llambda.contract import ErrorCode
from llambda.engines.base import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    SerialEngine,
)
from llambda.history import Message

# picoLLM's endpoint names → our done reasons.
ENDPOINT_REASONS = {
    "END_OF_SENTENCE": "end",
    "COMPLETION_TOKEN_LIMIT_REACHED": "length",
    "STOP_PHRASE_ENCOUNTERED": "stop",
    "INTERRUPTED": "stopped",
}

# What each picoLLM error means for whoever runs the stack (most specific first).
_ERROR_HINTS = (
    (
        "PicoLLMActivationLimitError",
        "The picoLLM AccessKey has reached its activation limit (each new Lambda instance "
        "may count as a device); see Picovoice Console, or use the llama.cpp engine.",
    ),
    ("PicoLLMActivationThrottledError", "picoLLM activation is throttled; try again later."),
    ("PicoLLMActivationRefusedError", "picoLLM refused to activate this AccessKey."),
    (
        "PicoLLMActivationError",
        "picoLLM could not activate the AccessKey; check the key stored in Secrets Manager "
        "and that the function can reach Picovoice's licence servers.",
    ),
    ("PicoLLMKeyError", "picoLLM rejected the AccessKey; check the key stored in Secrets Manager."),
    (
        "PicoLLMInvalidArgumentError",
        "picoLLM rejected its arguments; check the AccessKey and that the model is a .pllm file.",
    ),
    ("PicoLLMIOError", "picoLLM could not read the model file or reach its licence server."),
    ("PicoLLMMemoryError", "There is not enough memory to load the picoLLM model."),
)


# picoLLM's activation failures: the AccessKey is valid, but Picovoice will not activate it
# for this instance now.
ACTIVATION_ERRORS = (
    "PicoLLMActivationError",
    "PicoLLMActivationLimitError",
    "PicoLLMActivationThrottledError",
    "PicoLLMActivationRefusedError",
)


class ActivationError(EngineError):
    """picoLLM could not activate its AccessKey; the client gets `activation_limit`."""

    code = ErrorCode.ACTIVATION_LIMIT


def engine_error(error: Exception, *, access_key: str = "") -> EngineError:
    """The client-safe `EngineError` for a picoLLM error: `ActivationError` for activation."""
    message = describe_error(error, access_key=access_key)
    if any(cls.__name__ in ACTIVATION_ERRORS for cls in type(error).__mro__):
        return ActivationError(message)
    return EngineError(message)


def describe_error(error: Exception, *, access_key: str = "") -> str:
    """A clear, key-free sentence for a picoLLM error."""
    for cls in type(error).__mro__:
        for name, hint in _ERROR_HINTS:
            if cls.__name__ == name:
                return hint
    detail = str(getattr(error, "message", "") or error)
    if access_key:
        detail = detail.replace(access_key, "***")
    return f"picoLLM failed: {detail.splitlines()[0] if detail else type(error).__name__}"


def build_prompt(dialog: Any, messages: list[Message]) -> str:
    """Fill a picoLLM dialog with the conversation and render it with its template."""
    for message in messages:
        if message["role"] == "user":
            dialog.add_human_request(message["content"])
        elif message["role"] == "assistant":
            dialog.add_llm_response(message["content"])
    return str(dialog.prompt())


class PicoLLMEngine(SerialEngine):
    kind = "picollm"

    def __init__(self, pllm: Any, *, access_key: str = "") -> None:
        self._pllm = pllm
        self._access_key = access_key
        super().__init__()

    @classmethod
    def load(
        cls,
        model_path: str,
        *,
        access_key: str,
        create: Callable[..., Any] | None = None,
        device: str | None = None,
    ) -> PicoLLMEngine:
        """`picollm.create(access_key=..., model_path=..., device=...)`, errors mapped.

        `device` defaults to PICOLLM_DEVICE or picoLLM's `best`.
        """
        if not access_key:
            raise EngineError(
                "No picoLLM AccessKey is configured; set the secret's value (see README)."
            )
        import picollm

        create = create or picollm.create
        device = device or os.environ.get("PICOLLM_DEVICE") or "best"
        try:
            pllm = create(access_key=access_key, model_path=model_path, device=device)
        except picollm.PicoLLMError as error:
            raise engine_error(error, access_key=access_key) from error
        return cls(pllm, access_key=access_key)

    def interrupt(self) -> None:
        super().interrupt()
        self._pllm.interrupt()

    def _engine_error(self, error: Exception) -> EngineError | None:
        import picollm

        if isinstance(error, picollm.PicoLLMError):
            return engine_error(error, access_key=self._access_key)
        if isinstance(error, NotImplementedError):  # get_dialog: no template for this model
            return EngineError(f"The model {self._pllm.model} has no chat template.")
        return None

    @property
    def context_length(self) -> int:
        return int(self._pllm.context_length)

    def tokenize_messages(self, messages: list[Message]) -> list[int]:
        return list(self._pllm.tokenize(self._prompt(messages), bos=True, eos=False))

    def _prompt(self, messages: list[Message]) -> str:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        return build_prompt(self._pllm.get_dialog(history=None, system=system), messages)

    def _generate(
        self,
        request: GenerationRequest,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationResult:
        fitted = self.fit(request)
        prompt = self._prompt(fitted.messages)

        def stream(text: str) -> None:
            if self._interrupted.is_set() or should_stop():
                self._interrupted.set()
                self._pllm.interrupt()
                return
            on_text(text)

        kwargs: dict[str, Any] = {
            # What the prompt leaves of the context: picoLLM would otherwise run past it.
            "completion_token_limit": fitted.max_tokens,
            "stop_phrases": set(request.options.stop) or None,
            "stream_callback": stream,
        }
        if request.options.temperature is not None:
            kwargs["temperature"] = request.options.temperature
        if request.options.top_p is not None:
            kwargs["top_p"] = request.options.top_p
        if request.options.seed is not None:
            kwargs["seed"] = request.options.seed
        completion = self._pllm.generate(prompt, **kwargs)
        reason = ENDPOINT_REASONS.get(completion.endpoint.name, "end")
        if self._interrupted.is_set():
            reason = "stopped"
        return GenerationResult(
            reason=reason,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            text=completion.completion,
        )
