"""The CI workflow runs exactly the Makefile targets a person runs, with pinned actions."""

import re

import yaml

from infra.paths import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"


def load():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    return workflow, workflow.get("on", workflow.get(True))


def steps():
    workflow, _ = load()
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_runs_on_push_and_pull_request():
    _, triggers = load()
    assert set(triggers) == {"push", "pull_request"}


def test_runs_make_test_then_make_synth_and_nothing_else():
    commands = [step["run"].strip() for step in steps() if "run" in step]
    assert commands == ["make test", "make synth"]


def test_actions_are_pinned_to_exact_versions():
    uses = [step["uses"] for step in steps() if "uses" in step]
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})", action), action


def test_caches_pip_and_npm_and_uploads_cdk_out():
    by_action = {
        step["uses"].split("@")[0]: step.get("with", {}) for step in steps() if "uses" in step
    }
    assert by_action["actions/setup-python"]["cache"] == "pip"
    assert by_action["actions/setup-node"]["cache"] == "npm"
    assert by_action["actions/upload-artifact"]["path"].rstrip("/") == "cdk.out"
    names = [step.get("uses", step.get("run")) for step in steps()]
    assert names.index("make synth") < next(
        i for i, n in enumerate(names) if n.startswith("actions/upload-artifact")
    )


def test_deploy_doc_lists_every_context_key():
    from infra.config import context_keys

    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    missing = [key for key in context_keys() if f"`{key}`" not in text]
    assert missing == []
