"""The inference image laid out from its Dockerfile, as the twin runs it (no Docker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from offline.image import ImageError, build_image, parse_dockerfile
from offline.runtimes import Runtimes
from offline.template import StageAssembly
from tests.twin_assembly import TWIN_STAGE


@pytest.fixture(scope="module")
def image(assemblies, tmp_path_factory):
    """The laid-out image of the stage's image function, from the asset CDK staged."""
    stage = StageAssembly.load(assemblies.get(), TWIN_STAGE)
    [function] = [
        r
        for r in stage.resources("AWS::Lambda::Function")
        if r.properties.get("PackageType") == "Image"
    ]
    asset = stage.image_asset(function)
    assert asset is not None
    layout = build_image(
        asset.directory,
        dockerfile=asset.dockerfile,
        build_args=asset.build_args,
        cache_dir=Path.home() / ".cache" / "offline-twin",
        layout_root=tmp_path_factory.mktemp("image"),
    )
    return layout, function, asset


def test_the_task_root_holds_the_package_and_the_pinned_requirements(image):
    layout, _, _ = image
    root = layout.task_root
    assert (root / "llambda" / "handlers" / "inference.py").is_file()
    for package in ("llama_cpp", "picollm", "aws_lambda_powertools"):
        assert (root / package).is_dir(), package
    # The base image brings boto3; the Dockerfile must not install it again.
    assert not (root / "boto3").exists()


def test_the_handler_is_the_images_cmd_and_imports_from_task_root_and_runtime(image):
    layout, _, _ = image
    runtimes = Runtimes()
    try:
        paths = [str(layout.task_root), str(runtimes.python_packages())]
        module, _, function = layout.handler.rpartition(".")
        probe = (
            f"import sys; sys.path[:0] = {paths!r}; import importlib; "
            f"assert callable(getattr(importlib.import_module({module!r}), {function!r}))"
        )
        # Isolated as the twin's workers are: no site-packages, so nothing from .venv.
        env = {"PATH": os.environ["PATH"], "MODEL_PATH": "/nonexistent"}
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", probe], capture_output=True, env=env
        )
    finally:
        runtimes.close()
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_the_model_is_where_the_functions_environment_says(image):
    layout, function, asset = image
    model_path = function.properties["Environment"]["Variables"]["MODEL_PATH"]
    assert model_path.endswith(asset.build_args["MODEL_FILE"])
    host = layout.map_environment({"MODEL_PATH": model_path})["MODEL_PATH"]
    assert Path(host).is_file() and Path(host).stat().st_size > 1_000_000


def test_steps_for_the_system_package_manager_are_reported_not_run(image):
    layout, _, _ = image
    assert any("dnf install" in step for step in layout.skipped)


def _build(tmp_path: Path, dockerfile: str) -> object:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return build_image(tmp_path, cache_dir=tmp_path / "cache", layout_root=tmp_path / "layout")


def test_a_file_the_function_user_cannot_read_is_refused_unless_chmod(tmp_path):
    secret = tmp_path / "weights.bin"
    secret.write_bytes(b"x")
    os.chmod(secret, 0o600)
    base = "FROM public.ecr.aws/lambda/python:3.12\n"
    with pytest.raises(ImageError, match="COPY --chmod"):
        _build(tmp_path, base + "COPY weights.bin /opt/models/\n")
    layout = _build(tmp_path, base + "COPY --chmod=0644 weights.bin /opt/models/\n")
    assert layout.host_path("/opt/models/weights.bin").is_file()


def test_other_base_images_and_missing_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ImageError, match="Lambda Python base"):
        _build(tmp_path, "FROM debian:12\n")
    with pytest.raises(ImageError, match="no such file"):
        _build(tmp_path, "FROM public.ecr.aws/lambda/python:3.12\nCOPY nope.txt /x/\n")


def test_args_envs_stages_and_cmd_are_read_as_docker_reads_them(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("def handler(e, c): return 1\n")
    layout = _build(
        tmp_path,
        "ARG BASE=public.ecr.aws/lambda/python:3.12\n"
        "FROM ${BASE} AS build\n"
        "COPY app /opt/app\n"
        "FROM public.ecr.aws/lambda/python:3.12\n"
        "ARG NAME=main\n"
        'ENV APP_DIR="/opt/app" \\\n    MODE=fast\n'
        "COPY --from=build /opt/app ${LAMBDA_TASK_ROOT}\n"
        'CMD ["${NAME}.handler"]\n',
    )
    assert layout.environment["APP_DIR"] == "/opt/app" and layout.environment["MODE"] == "fast"
    assert layout.handler == "main.handler"
    assert (layout.task_root / "main.py").is_file()
    assert [i.keyword for i in parse_dockerfile("# c\nFROM x\n\nRUN a \\\n  b\n")] == [
        "FROM",
        "RUN",
    ]
