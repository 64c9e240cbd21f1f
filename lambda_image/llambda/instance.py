"""What Lambda tells an instance about itself through its reserved environment variables."""

from __future__ import annotations

import os

MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
INITIALIZATION_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"
PROVISIONED = "provisioned-concurrency"

# "on-demand", or "provisioned-concurrency" for an instance initialized ahead of its use.
INITIALIZATION_TYPE = os.environ.get(INITIALIZATION_VARIABLE, "on-demand")
IS_PROVISIONED = INITIALIZATION_TYPE == PROVISIONED


def memory_mb() -> int:
    """The function's memory, which Lambda bills its duration at (128 MB, its least, if
    unset)."""
    return int(os.environ.get(MEMORY_VARIABLE) or 128)
