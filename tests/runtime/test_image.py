"""The inference image's Dockerfile and requirements say what the issue asks."""

from __future__ import annotations

import importlib
import re
import subprocess
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


def _dockerfile_env(name: str) -> str:
    [value] = [
        rest.split("=", 1)[1].strip('"')
        for kw, rest in instructions()
        if kw == "ENV" and rest.startswith(f"{name}=")
    ]
    return value


def test_llama_cpp_is_built_locally_with_the_images_flags_from_one_place():
    flags = _dockerfile_env("CMAKE_ARGS")
    assert "-DGGML_NATIVE=OFF" in flags.split()
    show = "print-%: ; @echo '$($*)'"
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", show, "print-LLAMA_CMAKE_ARGS"],
        cwd=IMAGE.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed == flags
    # The Makefile reads the Dockerfile's line; it spells no flag of its own.
    assert "GGML" not in (IMAGE.parent / "Makefile").read_text()
    assert "march=native" not in (IMAGE / "Dockerfile").read_text()


def test_the_local_llama_cpp_uses_no_instruction_set_beyond_the_images():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "AVX2 = 1" in info, info
    # A build for this machine's CPU would list AVX512 or AMX where the CPU has them.
    assert "AVX512" not in info and "AMX" not in info, info
