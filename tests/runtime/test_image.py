"""The inference image's Dockerfile and requirements say what the issue asks."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "lambda_image"


def instructions() -> list[tuple[str, str]]:
    lines = (IMAGE / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_base_image_and_stages():
    froms = [rest for kw, rest in instructions() if kw == "FROM"]
    assert froms and all(f.startswith("public.ecr.aws/lambda/python:3.12") for f in froms)


def test_libgomp_with_the_base_images_package_manager():
    runs = [rest for kw, rest in instructions() if kw == "RUN"]
    assert any("dnf install -y libgomp" in r for r in runs)
    assert not any("yum " in r or "apt-get" in r for r in runs)


def test_requirements_pinned_without_boto3():
    reqs = [
        line.split("#")[0].strip()
        for line in (IMAGE / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    names = {re.split(r"[=<>!~]", r)[0].lower() for r in reqs}
    assert {"picollm", "llama-cpp-python", "aws-lambda-powertools"} <= names
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.]*", r) for r in reqs), reqs
    assert not names & {"boto3", "botocore"}
    pyproject = (IMAGE.parent / "pyproject.toml").read_text()
    for r in reqs:  # the same pins the tests run with
        assert f'"{r}"' in pyproject, r


def test_pip_installs_into_the_task_root():
    text = " ".join(rest for kw, rest in instructions())
    assert "pip install" in text and "-r" in text and "requirements.txt" in text
    assert any(kw == "COPY" and "${LAMBDA_TASK_ROOT}" in rest for kw, rest in instructions())


def test_model_is_chosen_by_build_arg_and_copied():
    ins = instructions()
    assert ("ARG", "MODEL_FILE=model.pllm") in ins
    assert ("COPY", "models/${MODEL_FILE} /opt/models/") in ins
    from infra.config import IMAGE_MODEL_DIR

    assert IMAGE_MODEL_DIR == "/opt/models"


def test_cmd_names_a_real_handler():
    [cmd] = [rest for kw, rest in instructions() if kw == "CMD"]
    [target] = re.findall(r'"([^"]+)"', cmd)
    module, _, name = target.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
    assert ("COPY", "llambda ${LAMBDA_TASK_ROOT}/llambda") in instructions()


@pytest.mark.parametrize("path", ["*.pllm", "*.gguf"])
def test_model_files_are_git_ignored(path):
    assert path in (IMAGE.parent / ".gitignore").read_text().splitlines()
