"""cdk-nag acknowledgements that need the synthesized policy to name the exact finding.

cdk-nag 3 reports each IAM wildcard as its own finding, `AwsSolutions-IAM5[Resource::…]`
with CloudFormation references flattened (`<LogicalId.Attr>`), and only an exact
acknowledgement silences it. These helpers compute the findings the way cdk-nag does and
acknowledge only those matching a pattern written next to its reason, so a new wildcard
still fails synth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

# Pseudo parameters as cdk-nag flattens them, or concrete values when the env is known.
PARTITION = r"(<AWS::Partition>|aws[a-z-]*)"
REGION = r"(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d)"
ACCOUNT = r"(<AWS::AccountId>|\d{12})"


@dataclass(frozen=True)
class WildcardRule:
    """Findings matching `pattern` (on policies whose path matches `path`) are acceptable."""

    pattern: str
    reason: str
    path: str = ".*"


def flatten_cfn_reference(node: Any) -> str:
    """cdk-nag's flattenCfnReference: a resolved value as a flat string."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten_cfn_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_cfn_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_cfn_reference(resource)}.{flatten_cfn_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_cfn_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_cfn_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def wildcard_findings(policy_document: dict[str, Any]) -> list[str]:
    """cdk-nag's IAM5 findings for one resolved policy document."""
    findings: list[str] = []
    for statement in policy_document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action")):
            if "*" in action and f"Action::{action}" not in findings:
                findings.append(f"Action::{action}")
        for resource in _as_list(statement.get("Resource")):
            flat = flatten_cfn_reference(resource)
            if "*" in flat and f"Resource::{flat}" not in findings:
                findings.append(f"Resource::{flat}")
    return findings


def acknowledge_wildcards(scope: Construct, rules: Iterable[WildcardRule]) -> list[str]:
    """Acknowledge every IAM5 finding under `scope` that a rule explains; return their ids.

    Call it after the last grant in the stack: it reads the policies as they stand.
    """
    rules = list(rules)
    acknowledged: list[str] = []
    for node in _walk(scope):
        if not isinstance(node, iam.CfnPolicy):
            continue
        document = cdk.Stack.of(node).resolve(node.policy_document)
        for finding in wildcard_findings(document):
            rule = next(
                (
                    r
                    for r in rules
                    if re.search(r.path, node.node.path) and re.fullmatch(r.pattern, finding)
                ),
                None,
            )
            if rule is not None:
                rule_id = f"AwsSolutions-IAM5[{finding}]"
                cdk.Validations.of(node).acknowledge(
                    cdk.Acknowledgment(id=rule_id, reason=rule.reason)
                )
                acknowledged.append(rule_id)
    return acknowledged


def _walk(node: IConstruct) -> Iterable[IConstruct]:
    yield node
    for child in node.node.children:
        yield from _walk(child)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
