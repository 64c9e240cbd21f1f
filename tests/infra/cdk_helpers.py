"""Small lookups over synthesized templates."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template


def only(template: Template, resource_type: str, **props: Any) -> tuple[str, dict[str, Any]]:
    """The one resource of `resource_type` (whose properties include `props`)."""
    found = {
        logical_id: resource
        for logical_id, resource in template.find_resources(resource_type).items()
        if all(resource["Properties"].get(k) == v for k, v in props.items())
    }
    assert len(found) == 1, f"expected one {resource_type} with {props}, found {list(found)}"
    logical_id, resource = next(iter(found.items()))
    return logical_id, dict(resource)


def function_by_handler(template: Template, handler: str) -> tuple[str, dict[str, Any]]:
    return only(template, "AWS::Lambda::Function", Handler=handler)


def image_function(template: Template) -> tuple[str, dict[str, Any]]:
    return only(template, "AWS::Lambda::Function", PackageType="Image")


def policies_of(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to a role."""
    statements = []
    for resource in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in resource["Properties"]["Roles"]:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def role_of(function: dict[str, Any]) -> str:
    return function["Properties"]["Role"]["Fn::GetAtt"][0]
