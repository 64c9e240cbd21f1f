"""checkov over both stages' templates: every finding is fixed or accepted in
infra/checkov.py, and every accepted one is a finding checkov still makes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.checkov import ACCEPTED
from infra.paths import REPO_ROOT

# pyproject.toml's `checkov` group, in its own environment (see the comment there).
CHECKOV = Path(os.environ.get("CHECKOV", REPO_ROOT / ".venv" / "checkov" / "bin" / "checkov"))
REASONS = {entry.reason for entry in ACCEPTED}


def stage_templates(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("assembly-*/*.template.json"))


def run_checkov(templates: list[Path]) -> dict[str, list[tuple[str, str, str]]]:
    """checkov's failed and skipped checks, as (template, resource, check id)."""
    if not CHECKOV.exists():
        pytest.skip(
            f"checkov is not installed at {CHECKOV}: python3 -m venv .venv/checkov && "
            ".venv/checkov/bin/pip install --group checkov"
        )
    command = [str(CHECKOV), "--framework", "cloudformation", "--output", "json"]
    command += ["--skip-download", "--compact"]
    for template in templates:
        command += ["--file", str(template)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    results: dict[str, list[tuple[str, str, str]]] = {"failed": [], "skipped": []}
    for part in reports:
        assert part["summary"]["parsing_errors"] == 0, part["summary"]
        for kind in results:
            results[kind] += [
                (Path(c["file_path"]).name, c["resource"], c["check_id"])
                for c in part["results"].get(f"{kind}_checks", [])
            ]
    return results


@pytest.fixture(scope="module")
def scanned(synthesized):
    return run_checkov(stage_templates(synthesized.outdir))


@pytest.fixture(scope="module")
def scanned_without_acknowledgements(synthesized, tmp_path_factory):
    """The same templates with every Metadata.checkov removed: what checkov finds."""
    folder = tmp_path_factory.mktemp("unacknowledged")
    copies = []
    for template in stage_templates(synthesized.outdir):
        body = json.loads(template.read_text())
        for resource in body["Resources"].values():
            resource.get("Metadata", {}).pop("checkov", None)
        copy = folder / template.name
        copy.write_text(json.dumps(body))
        copies.append(copy)
    return run_checkov(copies)


def test_both_stages_are_scanned(synthesized):
    names = [t.name for t in stage_templates(synthesized.outdir)]
    assert len(names) == 4 and {n[:4] for n in names} == {"DevS", "Prod"}


def test_checkov_finds_nothing_that_is_not_accepted(scanned):
    assert scanned["failed"] == []
    assert scanned["skipped"]


def test_every_accepted_finding_is_one_checkov_makes(scanned, scanned_without_acknowledgements):
    # An acknowledgement on a resource that passes anyway would hide nothing but mislead.
    stale = set(scanned["skipped"]) - set(scanned_without_acknowledgements["failed"])
    assert stale == set()
    assert len(scanned["skipped"]) == len(set(scanned["skipped"]))


def acknowledgements(template: Path) -> list[tuple[str, str, dict]]:
    body = json.loads(template.read_text())
    return [
        (logical_id, resource["Type"], skip)
        for logical_id, resource in body["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def test_every_acknowledgement_comes_from_the_one_list_with_its_reason(synthesized):
    found = [a for t in stage_templates(synthesized.outdir) for a in acknowledgements(t)]
    assert found
    for _, _, skip in found:
        assert skip["comment"] in REASONS and len(skip["comment"]) >= 40, skip


def test_acknowledgements_follow_the_stage_settings(synthesized):
    """Dev has no point-in-time recovery and no token; Prod has both (and so keeps no
    CloudFront logs): each acknowledgement is there only where its finding is."""
    by_stage = {}
    for template in stage_templates(synthesized.outdir):
        stage = "Prod" if template.name.startswith("Prod") else "Dev"
        by_stage.setdefault(stage, set()).update(
            (kind, skip["id"]) for _, kind, skip in acknowledgements(template)
        )
    assert ("AWS::DynamoDB::Table", "CKV_AWS_28") in by_stage["Dev"]
    assert ("AWS::DynamoDB::Table", "CKV_AWS_28") not in by_stage["Prod"]
    assert ("AWS::CloudFront::Distribution", "CKV_AWS_86") in by_stage["Prod"]
    assert ("AWS::CloudFront::Distribution", "CKV_AWS_86") not in by_stage["Dev"]
