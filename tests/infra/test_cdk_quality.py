"""cdk-nag (AwsSolutions) and cfn-lint over everything both stages synthesize."""

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint_file

# cfn-lint warnings we accept, by id, each with its reason. Errors are never ignored.
IGNORED_CFN_LINT_WARNINGS: dict[str, str] = {
    # CDK makes each function DependsOn its role (and the role's policy) so permissions exist
    # before the first invocation; the role is also a GetAtt, so cfn-lint calls it redundant.
    "W3005": "redundant DependsOn that CDK adds on purpose",
}


def test_cdk_nag_has_no_unacknowledged_findings(synthesized):
    # build_app registers the pack, so any finding would already have failed synth; run
    # it again over the whole tree to show the result explicitly.
    report = AwsSolutionsChecks().validate_scope(synthesized.app)
    findings = [
        f"{v.rule_name} {[r.construct_path for r in v.violating_resources]}"
        for v in report.violations
    ]
    assert findings == []
    assert report.success


def test_no_error_or_warning_annotations(stage):
    for stack in (stage.stateful, stage.stateless):
        annotations = Annotations.from_stack(stack)
        assert annotations.find_error("*", Match.any_value()) == []
        assert annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")) == []


def test_every_acknowledgement_has_a_specific_reason(synthesized):
    reasons = []
    for node in synthesized.app.node.find_all():
        for entry in node.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                reasons.extend(entry.data.values())
    assert reasons, "no acknowledgements were found: the metadata key changed?"
    for reason in reasons:
        assert len(reason) >= 40, reason


def templates(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("assembly-*/*.template.json"))


def test_both_stages_synthesize_two_stacks_each(synthesized):
    names = [p.name for p in templates(synthesized.outdir)]
    assert len(names) == 4
    for stage in ("Dev", "Prod"):
        assert any(n.startswith(f"{stage}Stateful") for n in names)
        assert any(n.startswith(f"{stage}Stateless") for n in names)


@pytest.mark.parametrize("stack", ["DevStateful", "DevStateless", "ProdStateful", "ProdStateless"])
def test_cfn_lint_is_clean(synthesized, stack):
    (template,) = [p for p in templates(synthesized.outdir) if p.name.startswith(stack)]
    matches = lint_file(template, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    problems = [
        f"{m.rule.id} {m.message} ({m.path})"
        for m in matches
        if m.rule.id.startswith("E") or m.rule.id not in IGNORED_CFN_LINT_WARNINGS
    ]
    assert problems == []
