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
    assert ("COPY", "--chmod=0644 models/${MODEL_FILE} /opt/models/") in ins
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


# A first deploy on a new account (issue 13): the model's mode, the engines' libraries. ---


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the image's last stage (after its FROM)."""
    ins = instructions()
    last_from = max(i for i, (kw, _) in enumerate(ins) if kw == "FROM")
    return ins[last_from + 1 :]


def test_the_model_is_copied_world_readable_whatever_its_mode_here():
    copies = [rest for kw, rest in final_stage() if kw == "COPY" and "models/" in rest]
    assert copies == ["--chmod=0644 models/${MODEL_FILE} /opt/models/"]


def test_the_final_stage_installs_every_library_the_engines_link_beyond_glibc():
    runs = " ".join(rest for kw, rest in final_stage() if kw == "RUN")
    installed = set(re.search(r"dnf install -y ([\w+ -]+?) &&", runs).group(1).split())
    # llama.cpp's libggml needs OpenMP; both engines need the C++ runtime and libgcc_s.
    assert {"libgomp", "libstdc++", "libgcc"} <= installed


def _needed_libraries() -> set[str]:
    """What the local engines' shared libraries link against (readelf's NEEDED)."""
    import llama_cpp
    import picollm

    libraries = [
        *Path(llama_cpp.__file__).parent.glob("lib/*.so"),
        Path(picollm.__file__).parent / "lib/linux/x86_64/libpv_picollm.so",
    ]
    needed: set[str] = set()
    for library in libraries:
        dynamic = subprocess.run(
            ["readelf", "-d", str(library)], capture_output=True, text=True, check=True
        ).stdout
        needed |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    return needed


# glibc's own libraries, and the engines' own, are in every image already.
_GLIBC = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1"}
_LOADER = {"ld-linux-x86-64.so.2"}
_PACKAGES = {"libgomp.so.1": "libgomp", "libstdc++.so.6": "libstdc++", "libgcc_s.so.1": "libgcc"}


def test_every_library_the_engines_need_is_installed_or_their_own():
    import shutil

    if not shutil.which("readelf"):
        pytest.skip("readelf (binutils) is not installed")
    runs = " ".join(rest for kw, rest in final_stage() if kw == "RUN")
    foreign = {
        name
        for name in _needed_libraries() - _GLIBC - _LOADER
        if not name.startswith(("libggml", "libllama", "libmtmd"))
    }
    assert foreign <= set(_PACKAGES), foreign
    for package in {_PACKAGES[name] for name in foreign}:
        assert f" {package} " in f" {runs} ", package


def test_the_image_ends_with_its_self_check_over_the_copied_model():
    stage = final_stage()
    keywords = [kw for kw, _ in stage]
    last_run = max(i for i, kw in enumerate(keywords) if kw == "RUN")
    last_copy = max(i for i, kw in enumerate(keywords) if kw == "COPY")
    # The self-check is the last step that builds anything, so it sees the whole image.
    assert last_run > last_copy
    assert stage[last_run] == ("RUN", "python /tmp/image_check.py /opt/models/${MODEL_FILE}")
    assert stage[last_copy] == ("COPY", "--chmod=0644 image_check.py /tmp/image_check.py")
    assert keywords[-1] == "CMD"
    assert (IMAGE / "image_check.py").is_file()


def _image_check(tmp_path, model_mode=0o644, task_root=None):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"gguf")
    model.chmod(model_mode)
    root = task_root or tmp_path / "task"
    root.mkdir(exist_ok=True)
    import os
    import sys

    return subprocess.run(
        [sys.executable, str(IMAGE / "image_check.py"), str(model)],
        env={**os.environ, "LAMBDA_TASK_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_self_check_passes_where_both_engines_load(tmp_path):
    done = _image_check(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "llama.cpp and picoLLM load" in done.stdout


def test_the_self_check_fails_on_a_model_lambda_could_not_read(tmp_path):
    done = _image_check(tmp_path, model_mode=0o600)
    assert done.returncode == 1
    assert "has mode 0600; Lambda's non-root user could not read it" in done.stderr


@pytest.mark.parametrize(
    ("package", "body", "words"),
    [
        (
            "llama_cpp",
            "raise OSError('libgomp.so.1: cannot open shared object file')",
            "llama.cpp could not load: libgomp.so.1",
        ),
        (
            "picollm",
            "def available_devices():\n"
            "    raise OSError('libstdc++.so.6: cannot open shared object file')\n",
            "picoLLM could not load: libstdc++.so.6",
        ),
    ],
)
def test_the_self_check_fails_the_build_when_a_library_is_missing(tmp_path, package, body, words):
    # The task root comes first on the path, as in Lambda: a package there stands in for
    # the real one with a library that will not load.
    root = tmp_path / "task"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(body + "\n")
    done = _image_check(tmp_path, task_root=root)
    assert done.returncode == 1
    assert words in done.stderr
