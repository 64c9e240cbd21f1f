"""Folders the stacks package, found from this file so synth works from any directory."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_IMAGE_DIR = REPO_ROOT / "lambda_image"
WEB_CLIENT_DIR = REPO_ROOT / "web_client"

# Model weights the image may bake in; all but the selected one stay out of the asset.
MODEL_SUFFIXES = (".pllm", ".gguf", ".bin")

# Git-ignored settings a person chooses once (the model, above all), so a deploy does not
# depend on remembering `-c modelFile=...` every time (infra.context.read_local_settings).
LOCAL_SETTINGS = REPO_ROOT / "llambda.local.json"
