"""The twin runs what the template says, so a change to `infra/` changes what it does.

Each test changes the app (through context, or in a scratch copy of it), synthesizes the
Dev stage, and starts a twin on that assembly: nothing in `offline/` is edited.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from offline.cloud import DEFAULT_REGION, OfflineCloud
from offline.template import StageAssembly
from tests.offline.twin_helpers import LOCAL_ENVIRONMENT, chat, connect, until_done
from tests.twin_assembly import REPO, TWIN_STAGE, app_copy, edit, synth, twin_context

pytestmark = pytest.mark.slow


@contextmanager
def twin_of(assembly: Path, **options) -> Iterator[OfflineCloud]:
    cloud = OfflineCloud(
        assembly=assembly, stage=TWIN_STAGE, environment=LOCAL_ENVIRONMENT, **options
    )
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


def changed_app(tmp_path: Path, *edits: tuple[str, str, str]) -> Path:
    """Synthesize a copy of the app with `edits` (file, old, new) made to it."""
    app = app_copy(tmp_path / "app")
    for relative, old, new in edits:
        edit(app / relative, old, new)
    return synth(tmp_path / "cdk.out", twin_context(), app_dir=app)


async def one_reply(cloud: OfflineCloud, prompt: str = "Say hi.") -> tuple[list, dict]:
    async with connect(cloud) as ws:
        await chat(ws, prompt, max_tokens=16)
        return await until_done(ws, timeout=120)


def wait_until(predicate, cloud: OfflineCloud, timeout: float = 60) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    cloud.run(poll(), timeout)


def test_without_the_routers_invoke_grant_a_chat_is_unavailable_and_the_denial_named(tmp_path):
    assembly = changed_app(
        tmp_path,
        ("infra/constructs/router_function.py", "inference_alias.grant_invoke(self.function)", ""),
    )
    with twin_of(assembly) as cloud:
        _, end = asyncio.run(one_reply(cloud))
        alias_arn = cloud.function("Inference").arn + ":live"
        denials = list(cloud.access.denials)
    assert end["type"] == "error" and end["code"] == "unavailable"
    assert any("lambda:InvokeFunction" in d and alias_arn in d for d in denials), denials
    # With enforcement off (`make dev ARGS=--no-iam`) the same stage streams, and says so.
    with twin_of(assembly, enforce_iam=False) as cloud:
        deltas, end = asyncio.run(one_reply(cloud))
        assert "IAM: OFF (--no-iam)" in "\n".join(cloud.describe())
    assert end["type"] == "done" and deltas


def test_connections_granted_on_another_stage_are_denied_and_the_reply_ends(tmp_path):
    assembly = changed_app(
        tmp_path,
        (
            "infra/constructs/websocket_api.py",
            'resource_name=f"{self.stage.stage_name}/{method}/@connections/*"',
            'resource_name=f"elsewhere/{method}/@connections/*"',
        ),
    )
    with twin_of(assembly) as cloud:
        inference = cloud.function("Inference")

        async def scenario() -> list[dict]:
            async with connect(cloud) as ws:
                await chat(ws, "Count to fifty.", max_tokens=64)
                # The reply runs, cannot post, and ends: the instance goes idle again.
                await asyncio.to_thread(
                    wait_until, lambda: inference.instance_count and not inference.busy, cloud
                )
                got = []
                while True:  # whatever did reach the client is already in its buffer
                    try:
                        got.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
                    except TimeoutError:
                        return got

        received = asyncio.run(scenario())
        denials = list(cloud.access.denials)
    assert not [m for m in received if m.get("type") == "delta"], received
    stage_resource = re.compile(
        r"execute-api:ManageConnections on arn:aws:execute-api:\S+/dev/POST/"
    )
    assert any(stage_resource.search(d) for d in denials), denials
    assert any(inference.spec.name in d for d in denials), denials


def test_without_the_table_read_grant_the_inference_error_is_shown_and_named(tmp_path):
    assembly = changed_app(
        tmp_path,
        (
            "infra/stateless_stack.py",
            "table.grant_read_write_data(self.inference.function)",
            "table.grant_write_data(self.inference.function)",
        ),
    )
    with twin_of(assembly) as cloud:
        _, end = asyncio.run(one_reply(cloud))
        inference = cloud.function("Inference").spec.name
        denials = list(cloud.access.denials)
    # The reply's stop polls are denied: it ends with an error rather than run on with no
    # way to stop it.
    assert end["type"] == "error", end
    assert any(inference in d and "dynamodb:GetItem" in d for d in denials), denials


def test_timeouts_memory_and_environment_follow_the_config(assemblies):
    overrides = {"routerTimeoutSeconds": 7, "routerMemoryMb": 384, "coalesceMs": 35}
    with twin_of(assemblies.get(overrides)) as cloud:
        router = cloud.function("Router")
        inference = cloud.function("Inference")
        env = inference.environment()
    assert (router.spec.timeout_seconds, router.spec.memory_mb) == (7, 384)
    assert router.environment()["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "384"
    assert env["COALESCE_MS"] == "35"


def test_a_handler_importing_what_its_artifact_lacks_fails_at_init(tmp_path):
    assembly = changed_app(
        tmp_path,
        (
            "lambda_image/llambda/handlers/router.py",
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nimport infra  # noqa: F401\n",
        ),
    )
    with twin_of(assembly) as cloud:
        client = boto3.client(
            "lambda",
            endpoint_url=cloud.http_url.rstrip("/"),
            region_name=DEFAULT_REGION,
            config=Config(retries={"total_max_attempts": 1}),
        )
        response = client.invoke(FunctionName=cloud.function("Router").spec.name, Payload=b"{}")
        error = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'infra'" in error["errorMessage"]
    # The repository does have it: only the function's own artifact is on its path.
    assert (REPO / "infra" / "__init__.py").is_file()


def test_provisioned_concurrency_loads_the_engine_at_init_not_in_the_first_reply(assemblies):
    # All day (Dev's own is scheduled, and the twin keeps no schedule: a scheduled alias
    # runs on demand here).
    with twin_of(assemblies.get({"provisionedConcurrency": 1, "provisionedHours": ""})) as cloud:
        inference = cloud.function("Inference")
        [instance] = inference.workers()  # initialized before any invoke
        assert instance.tag == "live"
        assert (
            inference.environment("provisioned-concurrency")["AWS_LAMBDA_INITIALIZATION_TYPE"]
            == "provisioned-concurrency"
        )
        _, done = asyncio.run(one_reply(cloud))
        assert inference.pids() == [instance.pid]  # the reply ran on it: no cold start
        init_log = list(inference.output)
    assert done["type"] == "done"
    assert done["timing"]["init_ms"] == 0
    loaded = [json.loads(line) for line in init_log if '"EngineLoadMs"' in line]
    assert loaded and loaded[0]["initialization"] == "provisioned-concurrency"
    assert loaded[0]["EngineLoadMs"][0] > 0


def test_offline_names_nothing_of_this_stack(assemblies):
    """What functions, routes, tables and names exist comes from the template alone."""
    stage = StageAssembly.load(assemblies.get(), TWIN_STAGE)
    names = {
        "llambda",  # the runtime package, so every handler path in it
        '"live"',  # the alias
        "'live'",
        "MODEL_PATH",  # environment variables the stack sets
        "TOKEN_SECRET_ARN",
        "LLAMA_",
    }
    for resource in stage.resources():
        names.add(resource.logical_id)
        props = resource.properties
        names.update(f'"{props[key]}"' for key in ("Handler", "Name") if key in props)
        for key in (props.get("KeySchema") or []) + [props.get("TimeToLiveSpecification") or {}]:
            if key.get("AttributeName") and key["AttributeName"] != "connectionId":
                names.add(key["AttributeName"])
    # API Gateway's own event and error shapes carry `connectionId` (also the table's key):
    # only the files that build those shapes may say it.
    api_gateway_shapes = {"events.py", "gateway.py", "connections_api.py", "iam.py"}
    found = []
    for path in sorted((REPO / "offline").glob("*.py")):
        # The contract between the parts (API Gateway's quotas among them) is the one
        # thing of ours the twin imports: standard library only, and it names no resource.
        text = "\n".join(
            line
            for line in path.read_text().splitlines()
            if not line.startswith("from llambda.contract import")
        )
        found += [
            f"{path.name}: {name}" for name in sorted(names) if len(name) > 3 and name in text
        ]
        if path.name not in api_gateway_shapes and "connectionId" in text:
            found.append(f"{path.name}: connectionId")
    assert found == []
