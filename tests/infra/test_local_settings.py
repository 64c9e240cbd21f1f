"""The model is chosen once, in git-ignored llambda.local.json (issue 13, #8)."""

import json
import subprocess

import pytest

from infra.config import ConfigError
from infra.context import read_local_settings, stage_configs, with_local_settings
from infra.paths import LOCAL_SETTINGS, REPO_ROOT
from tests.twin_assembly import app_copy, synth


def write(path, settings):
    path.write_text(json.dumps(settings))
    return path


def test_no_file_is_no_settings(tmp_path):
    assert read_local_settings(tmp_path / "llambda.local.json") == {}


def test_the_file_fills_in_what_context_does_not_set(tmp_path):
    local = read_local_settings(
        write(tmp_path / "l.json", {"modelFile": "mine.pllm", "Prod.reservedConcurrency": 4})
    )
    context = with_local_settings({"Prod.reservedConcurrency": "6", "@aws-cdk/x": True}, local)
    configs = stage_configs(context)
    assert configs["Dev"].model_file == configs["Prod"].model_file == "mine.pllm"
    assert configs["Prod"].reserved_concurrency == 6  # -c and cdk.json win over the file


def test_json_values_need_no_strings(tmp_path):
    local = read_local_settings(
        write(
            tmp_path / "l.json",
            {
                "engine": "llamacpp",
                "modelFile": "m.gguf",
                "requireToken": True,
                "allowedOrigins": ["https://a.example"],
                "inferenceMemoryMb": 3008,
            },
        )
    )
    dev = stage_configs(local)["Dev"]
    assert (dev.require_token, dev.inference_memory_mb) == (True, 3008)
    assert dev.allowed_origins == ("https://a.example",)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"modelfile": "x.pllm"}', "unknown key 'modelfile'"),
        ('{"Dev.modelfile": "x.pllm"}', "unknown key 'Dev.modelfile'"),
        ('["modelFile"]', "JSON object"),
        ("{modelFile: x}", "not valid JSON"),
    ],
)
def test_a_misspelt_or_malformed_file_stops_the_synth(tmp_path, text, words):
    path = tmp_path / "llambda.local.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        read_local_settings(path)


def test_pipeline_keys_are_allowed_in_the_file(tmp_path):
    local = read_local_settings(write(tmp_path / "l.json", {"modelSource": "s3://b/m/"}))
    assert local == {"modelSource": "s3://b/m/"}


def test_the_file_is_git_ignored_and_beside_cdk_json():
    assert LOCAL_SETTINGS.parent == REPO_ROOT and (REPO_ROOT / "cdk.json").is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(LOCAL_SETTINGS)], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_app_py_reads_the_file_and_reports_bad_settings_without_a_traceback(tmp_path):
    app = app_copy(tmp_path / "app")
    write(app / "llambda.local.json", {"Dev.modelFile": "chosen-once.pllm"})
    out = synth(tmp_path / "out", app_dir=app)
    manifests = list(out.glob("assembly-Dev/*Stateless*.assets.json"))
    (images,) = [json.loads(p.read_text())["dockerImages"] for p in manifests]
    (image,) = images.values()
    assert image["source"]["dockerBuildArgs"] == {"MODEL_FILE": "chosen-once.pllm"}
    # -c wins over the file.
    out = synth(tmp_path / "out2", {"Dev.modelFile": "given.pllm"}, app_dir=app)
    manifests = list(out.glob("assembly-Dev/*Stateless*.assets.json"))
    (images,) = [json.loads(p.read_text())["dockerImages"] for p in manifests]
    assert next(iter(images.values()))["source"]["dockerBuildArgs"]["MODEL_FILE"] == "given.pllm"
    write(app / "llambda.local.json", {"Prod.provisionedConcurrency": 50})
    with pytest.raises(RuntimeError) as failed:
        synth(tmp_path / "out3", app_dir=app)
    message = str(failed.value)
    assert "llambda: Prod: provisionedConcurrency (50) must not exceed" in message
    assert "Traceback" not in message
