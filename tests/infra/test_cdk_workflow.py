"""The CI workflow runs the Makefile targets a person runs, with what GitHub's Ubuntu needs.

Syntax, expressions, permissions and pinning are `make lint`'s (actionlint and zizmor, with
.github/zizmor.yml); these tests hold what those tools do not know: this project's choices.
"""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from infra.paths import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
DOCKERFILE = "lambda_image/Dockerfile"


def load():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    return workflow, workflow.get("on", workflow.get(True))


def job():
    workflow, _ = load()
    (only,) = workflow["jobs"].values()
    return only


def steps():
    return job()["steps"]


def by_action():
    return {step["uses"].split("@")[0]: step for step in steps() if "uses" in step}


def make(*args, drop=()):
    """make's output in the repo, without the parent make's flags or the variables in drop."""
    gone = {"MAKEFLAGS", *drop}
    environment = {k: v for k, v in os.environ.items() if k not in gone}
    return subprocess.run(
        ["make", "-s", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def recipe_lines(*args):
    """The commands `make -n` prints, each continued line joined into one."""
    return make("-n", *args).replace("\\\n", " ").splitlines()


def makefile_variable(name, drop=()):
    return make("--eval", "print-%: ; @echo $($*)", f"print-{name}", drop=drop).strip()


def test_runs_on_push_and_pull_request():
    _, triggers = load()
    assert set(triggers) == {"push", "pull_request"}


def test_runs_make_browser_test_and_synth_and_nothing_else():
    commands = [step["run"].strip() for step in steps() if "run" in step]
    assert commands == ["make browser", "make test", "make synth"]


def test_ubuntu_gets_playwrights_chromium_with_its_system_libraries():
    # Debian's /usr/bin/chromium, the Makefile's default, is no package on Ubuntu.
    assert job()["runs-on"].startswith("ubuntu-")
    assert job()["env"]["CHROMIUM"] == "playwright"
    recipe = recipe_lines("browser", "CHROMIUM=playwright")
    assert any("bin/playwright install --with-deps chromium" in line for line in recipe)


def test_caches_the_llama_wheel_folder_the_makefile_builds_into():
    cache = by_action()["actions/cache"]["with"]
    # The runner sets no XDG_CACHE_HOME, so the Makefile's default is under ~/.cache.
    default = makefile_variable("WHEEL_CACHE", drop=("WHEEL_CACHE", "XDG_CACHE_HOME"))
    assert Path(cache["path"].replace("~", os.environ["HOME"], 1)) == Path(default)
    key = " ".join(cache["key"].split())
    for decides_the_build in ("Makefile", DOCKERFILE, "lambda_image/requirements.txt"):
        assert f"'{decides_the_build}'" in key
    assert "steps.python.outputs.python-version" in key
    names = [step.get("uses", step.get("run")) for step in steps()]
    first_make = next(i for i, name in enumerate(names) if name.startswith("make "))
    assert names.index(by_action()["actions/cache"]["uses"]) < first_make


def test_the_compiled_llama_wheel_never_enters_pips_cache(tmp_path):
    # setup-python's pip cache is keyed only by pyproject.toml: it must hold no CPU-specific build.
    recipe = recipe_lines("wheel", f"WHEEL_CACHE={tmp_path}")
    (build,) = [line for line in recipe if " -m pip wheel " in line]
    assert "--no-cache-dir" in build
    assert by_action()["actions/setup-python"]["with"]["cache-dependency-path"] == "pyproject.toml"


def test_caches_npm_and_uploads_cdk_out_after_make_synth():
    actions = by_action()
    assert actions["actions/setup-node"]["with"]["cache"] == "npm"
    assert actions["actions/upload-artifact"]["with"]["path"].rstrip("/") == "cdk.out"
    names = [step.get("uses", step.get("run")) for step in steps()]
    assert names.index("make synth") < names.index(actions["actions/upload-artifact"]["uses"])


def test_zizmor_config_still_refuses_an_action_pinned_by_tag(tmp_path):
    # `make lint` passes because every action is pinned by SHA; the config must not relax that.
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = WORKFLOW.read_text()
    sha_pinned = by_action()["actions/checkout"]["uses"]
    (workflows / "ci.yml").write_text(text.replace(sha_pinned, "actions/checkout@v7.0.1"))
    zizmor = Path(sys.executable).parent / "zizmor"
    config = REPO_ROOT / ".github" / "zizmor.yml"
    result = subprocess.run(
        [zizmor, "--quiet", "--offline", "--no-progress", "--config", config, workflows],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout


def test_make_lint_runs_actionlint_and_zizmor_offline():
    recipe = recipe_lines("lint")
    assert any("bin/actionlint" in line for line in recipe)
    (zizmor,) = [line for line in recipe if "bin/zizmor" in line]
    assert "--offline" in zizmor


def test_deploy_doc_lists_every_context_key():
    from infra.config import context_keys

    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    missing = [key for key in context_keys() if f"`{key}`" not in text]
    assert missing == []
