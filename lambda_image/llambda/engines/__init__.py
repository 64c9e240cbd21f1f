"""Model runtimes behind one interface. Heavy imports (llama_cpp, picollm) happen only
when an engine loads, so importing this package stays cheap."""

from __future__ import annotations

from llambda.engines.base import (
    ContextLengthExceeded,
    Engine,
    EngineError,
    GenerationRequest,
    GenerationResult,
)

KINDS = ("picollm", "llamacpp")


def load_engine(kind: str, model_path: str, access_key: str | None = None) -> Engine:
    """Load the model at `model_path` with engine `kind`; raises `EngineError`."""
    if kind == "llamacpp":
        from llambda.engines.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine.load(model_path)
    if kind == "picollm":
        from llambda.engines.picollm_engine import PicoLLMEngine

        return PicoLLMEngine.load(model_path, access_key=access_key or "")
    raise EngineError(f"Unknown engine {kind!r}; use one of: {', '.join(KINDS)}.")


__all__ = [
    "KINDS",
    "ContextLengthExceeded",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "GenerationResult",
    "load_engine",
]
