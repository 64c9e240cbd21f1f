"""A generation speed published for picoLLM in Lambda, with its source: the speed the cost
model (`bench/cost.py`) assumes, as no picoLLM model can run here."""

from __future__ import annotations

from dataclasses import dataclass

from llambda.prices import CHECKED_ON


@dataclass(frozen=True, kw_only=True)
class PublishedSpeed:
    """A generation speed someone published for picoLLM in Lambda."""

    tokens_per_s: float
    what: str
    source: str
    checked_on: str = CHECKED_ON


# The only figure Picovoice publishes for its Lambda demo: the sample session in the
# serverless-picollm README (Phi-2 .pllm, 10,240 MB, `device="cpu:5"`), the code behind
# the "picoLLM on Lambda" blog post. That demo posts every token synchronously, so the
# engine alone is at least this fast.
PICOLLM_LAMBDA_SPEED = PublishedSpeed(
    tokens_per_s=6.35,
    what="picoLLM (Phi-2) in a 10,240 MB Lambda: `[Completion finished @ 6.35 tps]` in the "
    "sample session of Picovoice's serverless-picollm demo, the code of the blog post "
    "https://picovoice.ai/blog/picollm-on-lambda/",
    source="https://github.com/Picovoice/serverless-picollm#chat",
)
