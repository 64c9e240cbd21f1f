"""IAM for a local twin of AWS: per-role credentials, policy evaluation, request targets.

Pure and generic: nothing here knows which functions, tables or secrets exist. The parts:

- `CredentialBook` hands each role fake, AWS-shaped credentials (`ASIA…` access key id,
  secret key, session token) and maps a request's SigV4 `Authorization` header back to the
  role. It does NOT verify signatures: it trusts the access key id a request names, which
  is enough to tell local functions apart, not to resist a forger.
- `Policy` / `RolePermissions` evaluate resolved identity-based policy documents with moto's
  evaluator (`moto.iam.access_control.IAMPolicy`): an explicit Deny in any statement wins,
  then any Allow, else the request is implicitly denied.
- `dynamodb_targets`, `secretsmanager_targets`, `connections_target`, `invoke_target` turn
  what a request carries into the (IAM action, resource ARN) pairs AWS authorizes.
- `access_denied` builds the error response each service sends, so real SDK clients raise
  their real `AccessDeniedException`; `denial_line` is the log line for it.

What moto's evaluator gets right, used as is: Deny-beats-Allow across statements, a
Statement given as one dict or a list, Action/Resource given as one string or a list,
NotAction, `*` wildcards. What it gets wrong, fixed here by normalizing each document
before moto sees it (the matching itself stays moto's):

- Patterns are used as regular expressions (`*` becomes `.*`, nothing is escaped), so a
  `.` in an ARN matches any character, `$` (as in `fn:$LATEST`) is an anchor and `?`
  makes the previous character optional instead of matching exactly one. Every pattern is
  escaped here, with `?` turned into "one character". (Done only while a probe shows moto
  still matches this way, so a fixed moto is not double-escaped.)
- Action names are matched case-sensitively; AWS matches actions case-insensitively (and
  resources case-sensitively, as moto does). Actions are lower-cased on both sides here.
- NotResource is ignored: a statement without `Resource` is treated as a trust policy and
  applies to every resource. NotResource statements are evaluated here as "applies when
  the resource matches none of the NotResource patterns", each half asked of moto.
- Conditions: moto knows only `StringEquals`, treats every other operator and every key
  missing from the context as met (so a conditional Allow grants unconditionally), and
  answers an unmet condition with DENIED, i.e. an explicit deny even for an Allow. None of
  that is AWS's logic and this twin has no request context, so conditional statements
  never reach moto; they are handled fail-closed instead: an Allow with a Condition grants
  nothing, a Deny with a Condition denies as if unconditional (a warning is logged for
  each such statement).

NOT covered (nothing of these is evaluated): condition keys and operators (see above),
policy variables such as `${aws:username}` (matched literally), permissions boundaries,
resource-based policies (bucket, key, secret, Lambda function policies), service control
and resource control policies, session policies, cross-account access, and `Principal` /
`NotPrincipal` (identity policies must not have them; a document that does is rejected).
Documents must be resolved: an unresolved CloudFormation intrinsic (`{"Fn::GetAtt": …}`)
in an Action or Resource raises `TypeError`.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import secrets
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult

log = logging.getLogger("offline")

__all__ = [
    "CredentialBook",
    "Decision",
    "Policy",
    "RolePermissions",
    "access_denied",
    "assumed_role_arn",
    "connections_target",
    "denial_line",
    "dynamodb_targets",
    "invoke_target",
    "secretsmanager_targets",
    "ssm_targets",
]

# --------------------------------------------------------------------------- credentials

_AKID_RANDOM_BYTES = 10  # 10 random bytes -> 16 base32 characters
_AUTH_CREDENTIAL = re.compile(r"Credential=([A-Za-z0-9]+)/")


def _random_access_key_id() -> str:
    # Temporary (STS) credentials start with ASIA; AWS's ids are 20 upper-case base32
    # characters, which this matches.
    tail = base64.b32encode(secrets.token_bytes(_AKID_RANDOM_BYTES)).decode()
    return "ASIA" + tail


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


class CredentialBook:
    """Fake temporary credentials, one set per role, and the way back from a request.

    `issue` is idempotent: a role gets the same credentials every time (a function's
    every cold start signs as the same role), and two roles never share an access key id.

    `role_for` reads the access key id from a SigV4 `Authorization` header and returns
    the role it was issued for. Signatures are NOT verified (nor the date, region or
    service of the credential scope): the twin trusts the key id a request names.
    Presigned URLs (`X-Amz-Credential` in the query) are not read from headers; pass the
    key id to `role_for_access_key` for those.
    """

    def __init__(self) -> None:
        self._by_role: dict[str, dict[str, str]] = {}
        self._role_by_key: dict[str, str] = {}
        self._lock = threading.Lock()

    def issue(self, role_arn: str) -> dict[str, str]:
        """Credentials for `role_arn`, as the environment variables a Lambda gets."""
        with self._lock:
            existing = self._by_role.get(role_arn)
            if existing is None:
                key_id = _random_access_key_id()
                while key_id in self._role_by_key:  # pragma: no cover - 2**80 space
                    key_id = _random_access_key_id()
                existing = {
                    "AWS_ACCESS_KEY_ID": key_id,
                    "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30)[:40],
                    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(96),
                }
                self._by_role[role_arn] = existing
                self._role_by_key[key_id] = role_arn
            return dict(existing)

    def role_for_access_key(self, access_key_id: str) -> str | None:
        """The role an access key id was issued for, or None if this book never issued it."""
        with self._lock:
            return self._role_by_key.get(access_key_id)

    def role_for(self, headers: Mapping[str, str]) -> str | None:
        """The role whose credentials signed a request, from its `Authorization` header.

        None when the header is missing, is not SigV4 (`AWS4-HMAC-SHA256 Credential=…`),
        or names an access key id this book did not issue.
        """
        authorization = _header(headers, "Authorization")
        if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 "):
            return None
        match = _AUTH_CREDENTIAL.search(authorization)
        if match is None:
            return None
        return self.role_for_access_key(match.group(1))


# --------------------------------------------------------------------------- evaluation


class Decision(Enum):
    """The outcome of evaluating a request against identity-based policies."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


_WILDCARD_PROBE_PATTERN = "a.c"
_ELEMENTS = ("Action", "NotAction", "Resource", "NotResource")


@functools.cache
def _moto_matches_regex() -> bool:
    """Whether moto's matcher treats a pattern as a regular expression (it did up to 5.2)."""
    probe = json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": _WILDCARD_PROBE_PATTERN}]}
    )
    return IAMPolicy(probe).is_action_permitted("x:y", "abc") == PermissionResult.PERMITTED


def _for_moto(pattern: str) -> str:
    """An IAM wildcard pattern (`*`, `?`) rewritten so moto's matcher reads it as AWS does."""
    if not _moto_matches_regex():
        return pattern
    out = []
    for char in pattern:
        if char == "*":
            out.append("*")  # moto turns it into ".*"
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _strings(statement: Mapping[str, Any], element: str, index: int) -> list[str]:
    value = statement[element]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError(
            f"Statement {index}: {element} must be a string or a list of strings, got "
            f"{value!r} (an unresolved CloudFormation intrinsic? resolve the document first)"
        )
    if not values:
        raise ValueError(f"Statement {index}: {element} is empty")
    return values


def _one_of(statement: Mapping[str, Any], first: str, second: str, index: int) -> str:
    present = [name for name in (first, second) if name in statement]
    if len(present) != 1:
        raise ValueError(f"Statement {index}: needs exactly one of {first} and {second}")
    return present[0]


def _evaluator(statements: list[dict[str, Any]]) -> IAMPolicy:
    return IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": statements}))


class _NotResourceStatement:
    """A statement with NotResource, which moto ignores: both halves are asked of moto."""

    def __init__(self, statement: dict[str, Any], not_resources: list[str]) -> None:
        applies = {key: value for key, value in statement.items() if key != "NotResource"}
        applies["Resource"] = "*"
        self._applies = _evaluator([applies])
        self._excluded = _evaluator([{"Effect": "Allow", "Action": "*", "Resource": not_resources}])

    def result(self, action: str, resource: str) -> PermissionResult:
        if self._excluded.is_action_permitted("x:y", resource) == PermissionResult.PERMITTED:
            return PermissionResult.NEUTRAL
        return self._applies.is_action_permitted(action, resource)


class Policy:
    """One resolved identity-based policy document, evaluated with moto's `IAMPolicy`.

    `document` is a dict (or its JSON) with `Statement` as a dict or a list; each
    statement's Action/NotAction/Resource/NotResource may be a string or a list. Malformed
    documents raise `ValueError` (or `TypeError` for unresolved intrinsics) here rather
    than being half-evaluated later. See the module docstring for what is not covered.
    """

    def __init__(self, document: Mapping[str, Any] | str, *, name: str = "") -> None:
        doc = json.loads(document) if isinstance(document, str) else document
        if not isinstance(doc, Mapping) or "Statement" not in doc:
            raise ValueError(f"policy {name!r}: not a policy document (no Statement)")
        raw = doc["Statement"]
        statements = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(statements, list):
            raise ValueError(f"policy {name!r}: Statement must be a dict or a list")
        self.name = name
        plain: list[dict[str, Any]] = []
        self._not_resource: list[_NotResourceStatement] = []
        for index, statement in enumerate(statements):
            normalized = self._normalize(statement, index)
            if normalized is None:
                continue
            if "NotResource" in normalized:
                self._not_resource.append(
                    _NotResourceStatement(normalized, normalized["NotResource"])
                )
            else:
                plain.append(normalized)
        self._plain = _evaluator(plain) if plain else None

    def _normalize(self, statement: Any, index: int) -> dict[str, Any] | None:
        if not isinstance(statement, Mapping):
            raise ValueError(f"policy {self.name!r}: statement {index} is not an object")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise ValueError(f"Statement {index}: Effect must be Allow or Deny, got {effect!r}")
        if "Principal" in statement or "NotPrincipal" in statement:
            raise ValueError(
                f"Statement {index}: Principal belongs in resource-based policies, which are "
                "not evaluated here"
            )
        action_key = _one_of(statement, "Action", "NotAction", index)
        resource_key = _one_of(statement, "Resource", "NotResource", index)
        if "Condition" in statement:
            sid = statement.get("Sid", index)
            if effect == "Allow":
                log.warning(
                    "iam: policy %r statement %s has a Condition, which is not evaluated: "
                    "its Allow grants nothing here",
                    self.name,
                    sid,
                )
                return None
            log.warning(
                "iam: policy %r statement %s has a Condition, which is not evaluated: "
                "its Deny applies unconditionally here",
                self.name,
                sid,
            )
        actions = [_for_moto(a.lower()) for a in _strings(statement, action_key, index)]
        resources = [_for_moto(r) for r in _strings(statement, resource_key, index)]
        return {"Effect": effect, action_key: actions, resource_key: resources}

    def _results(self, action: str, resource: str) -> Iterable[PermissionResult]:
        if self._plain is not None:
            yield self._plain.is_action_permitted(action.lower(), resource)
        for statement in self._not_resource:
            yield statement.result(action.lower(), resource)

    def decide(self, action: str, resource: str) -> Decision:
        """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY for `action` on `resource` (an exact ARN)."""
        allowed = False
        for result in self._results(action, resource):
            if result == PermissionResult.DENIED:
                return Decision.EXPLICIT_DENY
            allowed = allowed or result == PermissionResult.PERMITTED
        return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY

    def allows(self, action: str, resource: str) -> bool:
        """Whether this document alone allows `action` on `resource`."""
        return self.decide(action, resource) == Decision.ALLOW


class RolePermissions:
    """All identity-based policies of one role (inline and managed, resolved).

    A request is allowed when no policy explicitly denies it and at least one allows it.
    """

    def __init__(
        self, role_arn: str, documents: Iterable[Policy | Mapping[str, Any] | str] = ()
    ) -> None:
        self.role_arn = role_arn
        self.policies = [
            d if isinstance(d, Policy) else Policy(d, name=f"{role_arn}#{i}")
            for i, d in enumerate(documents)
        ]

    def decide(self, action: str, resource: str) -> Decision:
        """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY across every policy of the role."""
        allowed = False
        for policy in self.policies:
            decision = policy.decide(action, resource)
            if decision == Decision.EXPLICIT_DENY:
                return decision
            allowed = allowed or decision == Decision.ALLOW
        return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY

    def allows(self, action: str, resource: str) -> bool:
        """Whether the role may perform `action` on `resource`."""
        return self.decide(action, resource) == Decision.ALLOW

    def allows_all(self, targets: Iterable[tuple[str, str]]) -> bool:
        """Whether the role may perform every (action, resource) pair of a request."""
        return all(self.allows(action, resource) for action, resource in targets)

    def first_denied(self, targets: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
        """The first (action, resource) pair the role may not perform, or None."""
        for action, resource in targets:
            if not self.allows(action, resource):
                return action, resource
        return None


# --------------------------------------------------------------------------- targets


def _json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise ValueError("request body is not a JSON object")
    return parsed


def _operation(target_header: str, prefix: str) -> str:
    service, _, operation = target_header.partition(".")
    if service != prefix or not operation:
        raise ValueError(f"X-Amz-Target {target_header!r} is not {prefix}.<Operation>")
    return operation


def _dedupe(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(pairs))


_DYNAMODB_PREFIX = "DynamoDB_20120810"
_DYNAMODB_TRANSACT_ACTIONS = {
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "Get": "dynamodb:GetItem",
}


def _table_arn(table: str, region: str, account_id: str) -> str:
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{region}:{account_id}:table/{table}"


def dynamodb_targets(
    target_header: str, body: bytes, *, region: str, account_id: str
) -> list[tuple[str, str]]:
    """The (action, resource) pairs a DynamoDB JSON request needs, from X-Amz-Target and body.

    - An operation on one table (`TableName`, a name or a table ARN) → `dynamodb:<Op>` on
      the table ARN; with `IndexName` (Query, Scan) on `<table ARN>/index/<IndexName>`.
    - BatchGetItem / BatchWriteItem → one pair per table in `RequestItems`.
    - TransactGetItems / TransactWriteItems, which have no IAM action of their own → per
      item `dynamodb:GetItem`/`PutItem`/`UpdateItem`/`DeleteItem`/`ConditionCheckItem` on
      its table.
    - Operations on `ResourceArn` (tagging, resource policies) → that ARN.
    - DescribeEndpoints → `[]` (no authorization needed).
    - Anything else (ListTables, DescribeLimits, …) → `dynamodb:<Op>` on `"*"`. That is
      right for account-wide operations; PartiQL (ExecuteStatement → PartiQLSelect, …) and
      export/import operations are not mapped to their IAM actions and so fail closed.

    Duplicates are removed, order kept. Raises ValueError for a target of another service
    or a body that is not a JSON object.
    """
    operation = _operation(target_header, _DYNAMODB_PREFIX)
    request = _json_body(body)
    action = f"dynamodb:{operation}"
    if operation == "DescribeEndpoints":
        return []
    if operation in ("BatchGetItem", "BatchWriteItem"):
        tables = request.get("RequestItems") or {}
        return _dedupe((action, _table_arn(t, region, account_id)) for t in tables)
    if operation in ("TransactGetItems", "TransactWriteItems"):
        pairs = []
        for item in request.get("TransactItems") or []:
            for kind, detail in item.items():
                item_action = _DYNAMODB_TRANSACT_ACTIONS.get(kind, f"dynamodb:{kind}")
                table = detail.get("TableName", "") if isinstance(detail, dict) else ""
                pairs.append((item_action, _table_arn(table, region, account_id)))
        return _dedupe(pairs)
    if isinstance(request.get("TableName"), str):
        resource = _table_arn(request["TableName"], region, account_id)
        if isinstance(request.get("IndexName"), str):
            resource += f"/index/{request['IndexName']}"
        return [(action, resource)]
    if isinstance(request.get("ResourceArn"), str):
        return [(action, request["ResourceArn"])]
    return [(action, "*")]


_SECRETS_PREFIX = "secretsmanager"
_SECRET_ARN = re.compile(r"^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.+)$")


def _secret_arn(
    secret_id: str, region: str, account_id: str, arn_for_name: Callable[[str], str | None]
) -> str:
    match = _SECRET_ARN.match(secret_id)
    if match is None:  # a name
        return arn_for_name(secret_id) or (
            f"arn:aws:secretsmanager:{region}:{account_id}:secret:{secret_id}"
        )
    # A full ARN, or a partial one (the name without the random 6-character suffix):
    # if the part after "secret:" is the name of an existing secret, it was partial.
    return arn_for_name(match.group("name")) or secret_id


def secretsmanager_targets(
    target_header: str,
    body: bytes,
    *,
    region: str,
    account_id: str,
    arn_for_name: Callable[[str], str | None],
) -> list[tuple[str, str]]:
    """The (action, resource) pairs a Secrets Manager request needs.

    `secretsmanager.GetSecretValue` → `secretsmanager:GetSecretValue` on the secret's full
    ARN (with its 6-character suffix), whatever form `SecretId` takes:

    - a full ARN → itself;
    - a partial ARN (no suffix) or a name → `arn_for_name(name)`, the caller's lookup of
      an existing secret by name;
    - a name or partial ARN of a secret that does not exist → the suffix-less
      `arn:aws:secretsmanager:{region}:{account}:secret:{name}`. A grant on the exact ARN
      or on `name-??????` does not match it (so the caller gets AccessDenied, as AWS
      reports for a secret it cannot show you); `name*` or `*` does (then the service's
      ResourceNotFoundException follows).

    CreateSecret → its `Name`, the same way. BatchGetSecretValue → BatchGetSecretValue on
    `"*"`, GetSecretValue on each secret of `SecretIdList`, and ListSecrets on `"*"` when
    it uses `Filters`. Operations naming no secret (ListSecrets, GetRandomPassword) → `"*"`.
    """
    operation = _operation(target_header, _SECRETS_PREFIX)
    request = _json_body(body)
    action = f"secretsmanager:{operation}"

    def arn(secret_id: str) -> str:
        return _secret_arn(secret_id, region, account_id, arn_for_name)

    if operation == "BatchGetSecretValue":
        pairs = [(action, "*")]
        pairs += [
            ("secretsmanager:GetSecretValue", arn(s))
            for s in request.get("SecretIdList") or []
            if isinstance(s, str)
        ]
        if request.get("Filters"):
            pairs.append(("secretsmanager:ListSecrets", "*"))
        return _dedupe(pairs)
    if isinstance(request.get("SecretId"), str):
        return [(action, arn(request["SecretId"]))]
    if operation == "CreateSecret" and isinstance(request.get("Name"), str):
        return [(action, arn(request["Name"]))]
    return [(action, "*")]


_SSM_PREFIX = "AmazonSSM"


def ssm_targets(
    target_header: str, body: bytes, *, region: str, account_id: str
) -> list[tuple[str, str]]:
    """The (action, resource) pairs an SSM request needs: `AmazonSSM.<Op>` → `ssm:<Op>` on
    each parameter it names (`Name`, or each of `Names`), as
    `arn:aws:ssm:{region}:{account}:parameter/{name}` (a name's leading "/" is the ARN's
    separator, as SSM writes it); an operation naming none → `"*"`."""
    operation = _operation(target_header, _SSM_PREFIX)
    request = _json_body(body)
    action = f"ssm:{operation}"

    def arn(name: str) -> str:
        return f"arn:aws:ssm:{region}:{account_id}:parameter/{name.lstrip('/')}"

    names = request.get("Names") if operation == "GetParameters" else [request.get("Name")]
    found = [(action, arn(name)) for name in names or [] if isinstance(name, str)]
    return _dedupe(found) or [(action, "*")]


def connections_target(
    method: str, api_id: str, stage: str, connection_id: str, *, region: str, account_id: str
) -> tuple[str, str]:
    """`execute-api:ManageConnections` on the `@connections` resource a call touches.

    `method` is the HTTP method (POST to send, GET to describe, DELETE to disconnect);
    `connection_id` is the decoded id from the path.
    """
    resource = (
        f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/"
        f"{method.upper()}/@connections/{connection_id}"
    )
    return "execute-api:ManageConnections", resource


_FUNCTION_ARN = re.compile(r"^arn:[^:]+:lambda:[^:]+:[^:]+:function:[^:]+(?::(?P<qualifier>.+))?$")


def invoke_target(function_arn: str, qualifier: str | None) -> tuple[str, str]:
    """`lambda:InvokeFunction` on the exact ARN an Invoke goes through.

    Unqualified (`qualifier` None) → the function ARN; through an alias or version →
    `<function ARN>:<qualifier>` (`$LATEST` included). As in AWS, each form is its own
    resource: a grant on the unqualified ARN does not cover `fn:live` or `fn:1`, a grant
    on `fn:live` covers neither `fn` nor `fn:$LATEST` nor the version the alias points to;
    `fn:*` covers every qualified form (CDK's `grantInvoke` grants `fn` and `fn:*`).

    `function_arn` may already be qualified; a different `qualifier` as well raises
    ValueError (Lambda rejects that request too).
    """
    match = _FUNCTION_ARN.match(function_arn)
    if match is None:
        raise ValueError(f"not a Lambda function ARN: {function_arn!r}")
    existing = match.group("qualifier")
    if qualifier is None or qualifier == existing:
        return "lambda:InvokeFunction", function_arn
    if existing is not None:
        raise ValueError(f"{function_arn!r} is already qualified; qualifier {qualifier!r}")
    return "lambda:InvokeFunction", f"{function_arn}:{qualifier}"


# --------------------------------------------------------------------------- denials


def assumed_role_arn(role_arn: str, session_name: str | None = None) -> str:
    """The STS identity a role session shows in errors, e.g. for Lambda
    `arn:aws:sts::123456789012:assumed-role/MyRole/my-function` (the session name is the
    function name; the role's path is dropped). Defaults the session name to the role's.
    """
    parts = role_arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("role/"):
        raise ValueError(f"not an IAM role ARN: {role_arn!r}")
    partition, account, name = parts[1], parts[4], parts[5].rsplit("/", 1)[-1]
    return f"arn:{partition}:sts::{account}:assumed-role/{name}/{session_name or name}"


def _denied_message(
    principal: str, action: str, resource: str, explicit: bool, *, reason: bool = True
) -> str:
    message = f"User: {principal} is not authorized to perform: {action} on resource: {resource}"
    if explicit:
        return message + " with an explicit deny in an identity-based policy"
    if reason:
        return message + f" because no identity-based policy allows the {action} action"
    return message


def access_denied(
    service: str,
    role_arn: str,
    action: str,
    resource: str,
    *,
    session_name: str | None = None,
    explicit_deny: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """The (status, headers, body) a service answers an unauthorized call with.

    `service` is "dynamodb" (400, JSON 1.0 `__type` `com.amazon.coral.service#…`),
    "secretsmanager" (400, JSON 1.1), "execute-api" (the `@connections` API: 403,
    `{"message"}`, `x-amzn-ErrorType`) or "lambda" (403, `{"Type": "User", "Message"}`,
    `x-amzn-ErrorType`). botocore parses each to `Error.Code == "AccessDeniedException"`.
    `session_name` is the session part of the assumed-role ARN in the message (Lambda uses
    the function's name); `explicit_deny` words the message for a matching Deny.
    """
    principal = assumed_role_arn(role_arn, session_name)
    request_id = str(uuid.uuid4())
    if service in ("dynamodb", "secretsmanager", "ssm"):
        message = _denied_message(principal, action, resource, explicit_deny)
        if service == "dynamodb":
            error_type = "com.amazon.coral.service#AccessDeniedException"
            content_type = "application/x-amz-json-1.0"
        else:
            error_type, content_type = "AccessDeniedException", "application/x-amz-json-1.1"
        body = json.dumps({"__type": error_type, "Message": message}).encode()
        headers = {"Content-Type": content_type, "x-amzn-RequestId": request_id}
        if service == "dynamodb":
            headers["x-amz-crc32"] = str(zlib.crc32(body))
        return 400, headers, body
    if service == "execute-api":
        message = _denied_message(principal, action, resource, explicit_deny, reason=False)
        body = json.dumps({"message": message}).encode()
    elif service == "lambda":
        message = _denied_message(principal, action, resource, explicit_deny)
        body = json.dumps({"Type": "User", "Message": message}).encode()
    else:
        raise ValueError(f"unknown service {service!r}")
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": "AccessDeniedException",
        "x-amzn-RequestId": request_id,
    }
    return 403, headers, body


def denial_line(
    function: str, role_arn: str, action: str, resource: str, *, explicit_deny: bool = False
) -> str:
    """One log line naming the function, the action, the resource and the role that lacked it."""
    why = "an explicit Deny in its policies" if explicit_deny else "no policy of it allows this"
    return (
        f"IAM denied: function {function} may not {action} on {resource} (role {role_arn}: {why})"
    )
