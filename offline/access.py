"""IAM on the twin's paths to every service: who is calling, and may they?

Each function runs with credentials of its own role (`offline.iam.CredentialBook`); each
call it makes reaches the twin over HTTP (DynamoDB and Secrets Manager through the proxy
before moto, `@connections` and Invoke on the twin's own server), and is checked here
against that role's policies from the template, on the exact ARN the request touches.
A denied call is answered as the service answers it, and logged in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from offline.iam import (
    CredentialBook,
    Decision,
    RolePermissions,
    access_denied,
    denial_line,
)

log = logging.getLogger("offline")

# A role for functions a test adds beside the template's: they may call anything.
UNRESTRICTED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Denial:
    status: int
    headers: dict[str, str]
    body: bytes


class AccessControl:
    """Roles, their credentials and their policies; `check` decides one request."""

    def __init__(self, *, enforce: bool = True) -> None:
        self.enforce = enforce
        self.book = CredentialBook()
        self._permissions: dict[str, RolePermissions] = {}
        self._functions: dict[str, list[str]] = {}  # role ARN -> function names
        self.denials: list[str] = []  # every denial line, for tests and diagnostics

    def add_role(self, role_arn: str, documents: Iterable[Mapping]) -> None:
        self._permissions[role_arn] = RolePermissions(role_arn, list(documents))

    def credentials_for(self, function: str, role_arn: str | None) -> dict[str, str]:
        """The environment variables that make `function`'s SDK calls carry its role."""
        if role_arn is None:
            role_arn = f"arn:aws:iam::000000000000:role/unrestricted-{function}"
            self.add_role(role_arn, [UNRESTRICTED_POLICY])
        self._functions.setdefault(role_arn, []).append(function)
        return self.book.issue(role_arn)

    def check(
        self, service: str, headers: Mapping[str, str], targets: Iterable[tuple[str, str]]
    ) -> Denial | None:
        """None when the caller's role allows every (action, resource); else the answer."""
        if not self.enforce:
            return None
        role_arn = self.book.role_for(headers)
        targets = list(targets)
        if role_arn is None:
            # Not one of the functions' credentials (the twin itself, or a test's client).
            return None
        permissions = self._permissions.get(role_arn, RolePermissions(role_arn))
        for action, resource in targets:
            decision = permissions.decide(action, resource)
            if decision == Decision.ALLOW:
                continue
            function = ", ".join(self._functions.get(role_arn, ["?"]))
            explicit = decision == Decision.EXPLICIT_DENY
            line = denial_line(function, role_arn, action, resource, explicit_deny=explicit)
            self.denials.append(line)
            log.warning("%s", line)
            status, response_headers, body = access_denied(
                service,
                role_arn,
                action,
                resource,
                session_name=function.split(",")[0],
                explicit_deny=explicit,
            )
            return Denial(status, response_headers, body)
        return None
