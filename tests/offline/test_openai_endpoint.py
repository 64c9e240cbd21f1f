"""The OpenAI-compatible endpoint through the twin, driven by the official `openai` package
as a user would: the Function URL the template declares (streaming, on the alias `live`),
the image's own runtime loop, the real tiny model, API keys in the stack's table."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request

import boto3
import openai
import pytest

from llambda.api_keys import ApiKeyStore
from offline.cloud import OfflineCloud
from tests.offline.twin_helpers import LOCAL_ENVIRONMENT, diagnostics
from tests.twin_assembly import TWIN_STAGE

PROMPT = [{"role": "user", "content": "Name three colours."}]


def url_of(cloud: OfflineCloud) -> str:
    [url] = cloud.function_urls.values()
    return url


def url_server(cloud: OfflineCloud):
    [served] = cloud.url_servers.values()
    return served


def new_key(cloud: OfflineCloud, name: str = "test") -> str:
    client = boto3.client(
        "dynamodb",
        endpoint_url=cloud.moto_url,
        region_name=cloud.region,
        aws_access_key_id="twin",
        aws_secret_access_key="twin",
    )
    [table] = cloud.tables.values()
    return ApiKeyStore(client, table).create(name).key


@pytest.fixture(scope="module")
def client(cloud) -> openai.OpenAI:
    return openai.OpenAI(base_url=url_of(cloud) + "v1", api_key=new_key(cloud), max_retries=0)


@pytest.fixture(scope="module")
def model(client) -> str:
    [only] = client.models.list().data
    return only.id


def inference_log(cloud: OfflineCloud) -> list[dict]:
    assert cloud.functions is not None
    [function] = [f for f in cloud.functions.all() if f.spec.entrypoint]
    lines = []
    for line in list(function.output):
        start = line.find("{")
        if start >= 0:
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line[start:]))
    return lines


def test_the_model_list_names_the_stages_model(client, model):
    assert re.fullmatch(r"SmolLM2-135M.*", model), model
    assert client.models.retrieve  # the SDK's own type parsed it


def test_a_streamed_completion_arrives_in_chunks_with_usage(client, model, cloud):
    stream = client.chat.completions.create(
        model=model,
        messages=PROMPT,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) >= 2, diagnostics(cloud)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(texts)
    assert len({c.id for c in chunks}) == 1


def test_a_whole_completion(client, model):
    answer = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=16)
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content.strip()
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert 0 < answer.usage.completion_tokens <= 16
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_a_seed_gives_the_same_sampled_answer_again(client, model):
    def answer(seed: int) -> str:
        completion = client.chat.completions.create(
            model=model, messages=PROMPT, max_tokens=24, temperature=1.5, seed=seed
        )
        return completion.choices[0].message.content

    first = answer(1234)
    assert answer(1234) == first  # at a high temperature: the seed decides every draw


def test_a_stop_sequence_ends_the_answer_before_it(client, model):
    first = (
        client.chat.completions.create(model=model, messages=PROMPT, max_tokens=32, temperature=0)
        .choices[0]
        .message.content
    )
    words = first.split()
    assert len(words) >= 4, first
    stop = words[2]
    cut = client.chat.completions.create(
        model=model, messages=PROMPT, max_tokens=32, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == first[: first.index(stop)]
    assert stop not in cut.choices[0].message.content


def test_a_client_that_leaves_mid_stream_stops_the_generation(client, model, cloud):
    served = url_server(cloud)
    cuts_before = len(served.cut_after_chunks)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
        max_tokens=400,
        stream=True,
    )
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
        if received == 3:
            break
    stream.close()  # the connection goes, as a closed editor or a killed script's does

    def logged():
        return [
            line
            for line in inference_log(cloud)
            if line.get("message") == "openai completion" and line.get("client_gone")
        ]

    deadline = time.monotonic() + 30
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert logged(), diagnostics(cloud)
    generated = logged()[-1]["completion_tokens"]
    [chunks_at_cut] = served.cut_after_chunks[cuts_before:]
    tokens_at_cut = chunks_at_cut - 1  # the first chunk is the role, with no token
    # Seen on the server: the generation ended at most one token after the cut (and one
    # more may have been on its way through the sockets when the client left).
    assert generated <= tokens_at_cut + 2, (generated, tokens_at_cut)
    assert generated < 400
    # The instance is free again and answers the next request.
    again = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=4)
    assert again.choices[0].message.content


def test_a_bad_key_is_401_in_openais_shape(cloud, model):
    for key in ("llk-not-a-key", "sk-someone-elses"):
        stranger = openai.OpenAI(base_url=url_of(cloud) + "v1", api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            stranger.chat.completions.create(model=model, messages=PROMPT, max_tokens=4)
        assert refused.value.status_code == 401
        assert refused.value.code == "invalid_api_key"
        assert refused.value.body["type"] == "invalid_request_error"


def raw(cloud, path, *, body=None, headers=None, method=None):
    request = urllib.request.Request(
        url_of(cloud) + path.lstrip("/"),
        data=body,
        headers=headers or {},
        method=method or ("POST" if body is not None else "GET"),
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_no_key_at_all_is_refused(cloud, model):
    """The stage requires a key (Prod may not turn that off): the URL is public, the
    function refuses."""
    body = json.dumps({"model": model, "messages": PROMPT}).encode()
    status, _, data = raw(cloud, "/v1/chat/completions", body=body)
    assert status == 401
    assert json.loads(data)["error"]["code"] == "invalid_api_key"
    status, _, _ = raw(cloud, "/v1/models")
    assert status == 401


def test_a_bad_body_is_400_never_a_traceback(cloud, client, model):
    key = {"Authorization": f"Bearer {client.api_key}", "Content-Type": "application/json"}
    for body in (b"{not json", b"[]", json.dumps({"model": model}).encode()):
        status, headers, data = raw(cloud, "/v1/chat/completions", body=body, headers=key)
        assert status == 400, data
        assert headers["Content-Type"].startswith("application/json")
        error = json.loads(data)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert "Traceback" not in error["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=PROMPT, n=2)
    assert refused.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=PROMPT, temperature=9)
    assert refused.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert refused.value.code == "model_not_found"
    status, _, data = raw(cloud, "/v1/embeddings", body=b"{}", headers=key)
    assert status == 404 and json.loads(data)["error"]["code"] == "unknown_url"


def test_a_prompt_over_the_limit_is_400_context_length_exceeded(client, model):
    # Over the stage's character cap: refused before the engine.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x" * 9000}]
        )
    assert refused.value.code == "context_length_exceeded"
    # Under the characters but over the model's context in its own tokens.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "7 " * 3900}], stream=True
        )
    assert refused.value.code == "context_length_exceeded"
    assert "tokens" in refused.value.body["message"]


def test_a_browser_from_another_origin_is_refused(cloud, client):
    status, headers, _ = raw(
        cloud,
        "/v1/models",
        headers={"Authorization": f"Bearer {client.api_key}", "Origin": "https://evil.example"},
    )
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers


def test_cors_is_the_urls_own_for_the_configured_origins(assemblies):
    """With origins configured, the Function URL answers a browser's preflight itself and
    marks allowed answers; an origin not listed gets no CORS headers."""
    allowed = "https://editor.example"
    assembly = assemblies.get({"openaiAllowedOrigins": allowed})
    cloud = OfflineCloud(assembly=assembly, stage=TWIN_STAGE, environment=LOCAL_ENVIRONMENT)
    cloud.start()
    try:
        preflight = {
            "Origin": allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        status, headers, _ = raw(cloud, "/v1/chat/completions", headers=preflight, method="OPTIONS")
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == allowed
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "authorization" in headers["Access-Control-Allow-Headers"]
        status, headers, _ = raw(
            cloud,
            "/v1/chat/completions",
            headers={**preflight, "Origin": "https://evil.example"},
            method="OPTIONS",
        )
        assert "Access-Control-Allow-Origin" not in headers
        key = new_key(cloud)
        status, headers, data = raw(
            cloud, "/v1/models", headers={"Authorization": f"Bearer {key}", "Origin": allowed}
        )
        assert status == 200, data
        assert headers["Access-Control-Allow-Origin"] == allowed
    finally:
        cloud.stop()
