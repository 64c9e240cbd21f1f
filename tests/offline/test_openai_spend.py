"""Spending control at the OpenAI-compatible door, through the twin with the official
`openai` package, the real tiny model and the stack's table on moto: the kill switch, each
API key's daily budget (a completion cut where it runs out, then refused, while another key
goes on), parallel completions on one key, and the counters settled to what was generated."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from llambda.api_keys import digest
from llambda.budgets import _day_window, identity_of
from llambda.generation_switch import MAX_AGE_SECONDS
from offline.cloud import OfflineCloud
from tests.conftest import ROOMY
from tests.offline.test_openai_endpoint import inference_log, new_key, url_of, url_server
from tests.offline.test_spend_twin import switch, used
from tests.offline.twin_helpers import LOCAL_ENVIRONMENT, diagnostics
from tests.twin_assembly import TWIN_STAGE

KEY_CAP = 64  # each key's tokens a day
STAGE_CAP = 100_000
COUNTING = [
    {
        "role": "user",
        "content": "Count from 1 to 1000, one number after another, separated by commas.",
    }
]
HELLO = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def twin(assemblies) -> Iterator[OfflineCloud]:
    settings = {
        # A budget may not be under the default max_tokens (infra/config.py).
        "defaultMaxTokens": 16,
        "clientTokensPerDay": KEY_CAP,
        "stageTokensPerDay": STAGE_CAP,
        "conversationTokenBudget": 0,
    }
    cloud = OfflineCloud(
        assembly=assemblies.get({**ROOMY, **settings}),
        stage=TWIN_STAGE,
        environment=LOCAL_ENVIRONMENT,
    )
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


def today() -> str:
    return _day_window(int(time.time()))[0]


def key_counter(key: str) -> str:
    """The key's counter: the hash of its hash, never the key (llambda.budgets)."""
    return f"client#{identity_of(digest(key))}#{today()}"


def stage_counter() -> str:
    return f"stage#{today()}"


def resets_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_day_window(int(time.time()))[1]))


def client_for(cloud: OfflineCloud, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url_of(cloud) + "v1", api_key=key or new_key(cloud), max_retries=0
    )


@pytest.fixture(scope="module")
def model(twin) -> str:
    [only] = client_for(twin).models.list().data
    return only.id


def completion(client: openai.OpenAI, model: str, **kwargs):
    """A completion, waiting out the twin's concurrency throttle (Lambda's own 429, which
    has no code), never a budget's refusal."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return client.chat.completions.create(model=model, **kwargs)
        except openai.RateLimitError as limited:
            if limited.code is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_kill_switch_refuses_completions_within_seconds_and_on_again_they_run(twin, model):
    client = client_for(twin)
    switch(twin, "off")
    flipped = time.monotonic()
    refused = None
    while refused is None:
        try:
            completion(client, model, messages=HELLO, max_tokens=4)
        except openai.InternalServerError as error:
            refused = error
        assert time.monotonic() - flipped < 30, "still answering"  # read before the flip
    # Within the instances' cache age (5 s), plus a completion that started just before.
    assert time.monotonic() - flipped < MAX_AGE_SECONDS + 10
    assert refused.status_code == 503
    assert refused.code == "generation_off"
    assert refused.body["type"] == "server_error"
    assert "turned off" in refused.body["message"]
    # OpenAI's SDKs would retry a 503 at once: the answer tells them not to.
    assert refused.response.headers["x-should-retry"] == "false"
    # The model list is no generation: it still answers.
    assert [m.id for m in client.models.list().data] == [model]
    switch(twin, "on")
    deadline = time.monotonic() + MAX_AGE_SECONDS + 10
    while True:
        try:
            answer = completion(client, model, messages=HELLO, max_tokens=4)
            break
        except openai.InternalServerError:
            assert time.monotonic() < deadline, diagnostics(twin)
            time.sleep(0.2)
    assert answer.choices[0].message.content
    # Every instance's reading of "off" expires before the next test.
    time.sleep(MAX_AGE_SECONDS)
    # The function read the parameter through the twin's IAM: CDK's grant is all it needs.
    assert not any("ssm:" in line for line in twin.access.denials), twin.access.denials


def test_a_key_is_cut_at_its_budget_then_refused_while_another_key_goes_on(twin, model):
    key = new_key(twin)
    client = client_for(twin, key)
    cut = completion(client, model, messages=COUNTING, max_tokens=KEY_CAP + 36, temperature=0)
    # Asked for more than the key has left: the reply ends where the budget does, as an
    # OpenAI reply ends at max_tokens.
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == KEY_CAP
    assert used(twin, key_counter(key)) == KEY_CAP
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=model, messages=HELLO, max_tokens=4)
    error = refused.value
    assert error.status_code == 429
    assert (error.code, error.body["type"]) == ("budget_exhausted", "insufficient_quota")
    assert set(error.body) == {"message", "type", "param", "code"}  # OpenAI's shape
    assert "today's token budget" in error.body["message"]
    assert resets_at() in error.body["message"]
    assert error.response.headers["x-should-retry"] == "false"
    assert used(twin, key_counter(key)) == KEY_CAP  # a refusal reserves nothing
    # Each key has its own day: another one still works.
    other = completion(client_for(twin), model, messages=HELLO, max_tokens=8)
    assert other.choices[0].message.content


def test_a_streamed_reply_is_cut_at_the_budget_with_finish_reason_length(twin, model):
    key = new_key(twin)
    stream = completion(
        client_for(twin, key),
        model,
        messages=COUNTING,
        max_tokens=KEY_CAP * 2,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length", diagnostics(twin)
    assert chunks[-1].usage.completion_tokens == KEY_CAP
    assert used(twin, key_counter(key)) == KEY_CAP


def test_parallel_completions_on_one_key_never_take_it_past_its_budget(twin, model):
    key = new_key(twin)
    per_reply, clients = 16, 2  # the twin's reserved concurrency: two at once

    def spend() -> int:
        client = client_for(twin, key)
        generated = 0
        while True:
            try:
                answer = completion(client, model, messages=COUNTING, max_tokens=per_reply)
            except openai.RateLimitError as refused:
                assert refused.code == "budget_exhausted", refused.body
                return generated
            generated += answer.usage.completion_tokens

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(lambda _: spend(), range(clients)))
    # Each reservation takes only what the counter had left: no overshoot at all.
    assert total <= KEY_CAP, total
    # A key is refused while the other's reservation (one reply's worth) is still held.
    assert total >= KEY_CAP - clients * per_reply, total
    assert used(twin, key_counter(key)) == total


def test_the_counters_are_settled_to_what_was_generated(twin, model):
    key = new_key(twin)
    client = client_for(twin, key)
    stage_before = used(twin, stage_counter())
    answer = completion(client, model, messages=HELLO, max_tokens=48)
    generated = answer.usage.completion_tokens
    assert generated < 48, answer  # it ended by itself: most of the reservation goes back
    assert used(twin, key_counter(key)) == generated
    # The stage's counter is the WebSocket door's too: it got the same back.
    assert used(twin, stage_counter()) == stage_before + generated


def test_a_stream_the_client_leaves_gives_back_what_it_did_not_generate(twin, model):
    key = new_key(twin)
    served = url_server(twin)
    cuts_before = len(served.cut_after_chunks)
    stream = completion(
        client_for(twin, key), model, messages=COUNTING, max_tokens=KEY_CAP, stream=True
    )
    with contextlib.closing(stream):
        for received, _ in enumerate(stream):
            if received == 3:
                break

    def gone() -> list[dict]:
        return [
            line
            for line in inference_log(twin)
            if line.get("message") == "openai completion" and line.get("client_gone")
        ]

    deadline = time.monotonic() + 30
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone() and len(served.cut_after_chunks) > cuts_before, diagnostics(twin)
    generated = gone()[-1]["completion_tokens"]
    assert generated < KEY_CAP
    # Settled before that line was logged: the counter holds what was generated, no more.
    assert used(twin, key_counter(key)) == generated


def test_a_refused_prompt_reserves_nothing(twin, model):
    key = new_key(twin)
    with pytest.raises(openai.BadRequestError) as refused:
        # Under the characters but over the model's context in its own tokens: refused
        # by the engine, after the reservation.
        completion(
            client_for(twin, key), model, messages=[{"role": "user", "content": "7 " * 3900}]
        )
    assert refused.value.code == "context_length_exceeded"
    assert used(twin, key_counter(key)) == 0
