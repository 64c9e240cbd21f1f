"""The pinned CLI synthesizes both stages offline, and `cdk ls` lists every stack."""

import os
import shutil
import subprocess

import pytest

from infra.paths import REPO_ROOT

EXPECTED_STACKS = ["Dev/Stateful", "Dev/Stateless", "Prod/Stateful", "Prod/Stateless"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cli_synth_and_ls(tmp_path):
    if not (REPO_ROOT / "node_modules" / ".bin" / "cdk").exists() or not shutil.which("npx"):
        pytest.fail("run `make setup` first: the pinned aws-cdk CLI is not installed")
    env = {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        # No account: the CLI must not need credentials or look anything up.
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "CDK_DEFAULT_ACCOUNT": "",
    }
    out = tmp_path / "cdk.out"
    synth = subprocess.run(
        ["npx", "cdk", "synth", "--quiet", "--output", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert synth.returncode == 0, synth.stderr[-4000:]
    assert "end-of-life" not in synth.stderr  # jsii's banner is silenced
    templates = sorted(p.name for p in out.glob("assembly-*/*.template.json"))
    assert len(templates) == 4
    # List from the assembly just written: no second synth.
    listing = subprocess.run(
        ["npx", "cdk", "ls", "--app", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr[-4000:]
    stacks = [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]
    assert sorted(s for s in stacks if "/" in s) == EXPECTED_STACKS
