"""The inference function: real generation with llama.cpp streamed through the local
@connections API, with its state in moto's DynamoDB."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from llambda import protocol
from llambda.dispatch import Dispatch
from llambda.engines import Engine, EngineError, GenerationResult
from llambda.generation import EngineSource
from llambda.handlers import aws
from llambda.handlers.inference import InferenceDeps, run_reply
from llambda.sender import StreamSender, connection_poster
from llambda.settings import InferenceSettings, RouterSettings

from .conftest import counted_error_codes, emitted_metrics, new_id


class Loaded(EngineSource):
    def __init__(self, engine: Engine) -> None:
        super().__init__(lambda: engine)
        self.engine = engine


@pytest.fixture
def store(conversations):
    """What the inference function uses: the conversation store."""
    return conversations


@pytest.fixture
def settings(table) -> InferenceSettings:
    return InferenceSettings(table_name=table)


def start(
    store, connections, *, prompt="Name three colours.", conversation=None, cid=None, **options
):
    """Take the lease as the router does (in a new conversation on a new connection, or
    in `conversation` on `cid`), and build the dispatch."""
    reply_id = new_id()
    if conversation is None:
        cid, conversation = new_id(), new_id()
        connections.connect(cid)
        admitted = store.start(
            conversation, cid, reply_id, prompt=prompt, lease_seconds=60, ttl_seconds=600
        )
    else:
        admitted = store.admit_chat(
            conversation,
            cid,
            reply_id,
            prompt=prompt,
            per_minute=100,
            lease_seconds=60,
            ttl_seconds=600,
        )
    options.setdefault("max_tokens", 24)
    options.setdefault("temperature", 0.0)
    return Dispatch(
        connection_id=cid,
        conversation_id=conversation,
        reply_id=reply_id,
        request_id="r",
        callback_url=connections.endpoint,
        prompt=prompt,
        options=protocol.ChatOptions(**options),
        dispatched_at_ms=0,
        history=tuple(admitted.turns),
        epoch=admitted.epoch,
        attach_count=admitted.attachment.count,
    )


def again(store, connections, dispatch, **kwargs):
    """The next chat in the same conversation, from the same connection."""
    return start(
        store,
        connections,
        conversation=dispatch.conversation_id,
        cid=dispatch.connection_id,
        **kwargs,
    )


def sender_for(dispatch, connections, settings, post=None) -> StreamSender:
    return StreamSender(
        post or connection_poster(connections.client(), dispatch.connection_id),
        conversation_id=dispatch.conversation_id,
        coalesce_ms=settings.coalesce_ms,
    )


def run(dispatch, store, connections, engines, settings):
    sender = sender_for(dispatch, connections, settings)
    return run_reply(dispatch, deps(store, engines, settings), sender)


def deps(store, engines, settings) -> InferenceDeps:
    return InferenceDeps(
        settings=settings, store=store, engines=engines, connections=aws.ManagementApis()
    )


def plain(messages: list[dict]) -> list[dict]:
    """The messages without the conversation each one is marked with."""
    return [{k: v for k, v in m.items() if k != "conversation"} for m in messages]


def test_a_reply_streams_then_finishes(store, connections, llama_engine, settings):
    connections.faults.latency_ms = 15  # a network between Lambda and API Gateway
    dispatch = start(store, connections, prompt="Write a short poem about the sea.", max_tokens=40)
    peer = connections.registry.get(dispatch.connection_id)
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert all(m["conversation"] == dispatch.conversation_id for m in peer.messages)
    messages = plain(peer.messages)
    assert messages[0] == {"type": "status", "state": "generating"}
    done = messages[-1]
    assert done["type"] == "done" and done["reason"] == outcome.reason
    deltas = [m for m in messages if m["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    text = "".join(d["text"] for d in deltas)
    assert text.strip()
    # Coalesced: fewer posts than tokens.
    assert len(deltas) < done["usage"]["completion_tokens"]
    assert done["usage"]["prompt_tokens"] > 0
    assert done["timing"]["init_ms"] == 0 and done["timing"]["ttft_ms"] >= 0
    assert done["timing"]["tokens_per_s"] > 0
    item = store.get(dispatch.conversation_id)
    assert "replyId" not in item  # lease released
    history = store.history(dispatch.conversation_id)
    assert history == [
        {"role": "user", "content": "Write a short poem about the sea."},
        {"role": "assistant", "content": text},
    ]


def test_memory_across_turns_and_reset(store, connections, llama_engine, settings):
    engines = Loaded(llama_engine)
    first = start(store, connections, prompt="My name is Zebulon.", max_tokens=16)
    cid = first.connection_id
    peer = connections.registry.get(cid)

    def usage():
        return peer.messages[-1]["usage"]["prompt_tokens"]

    run(first, store, connections, engines, settings)
    alone = usage()
    run(
        again(store, connections, first, prompt="What is my name?"),
        store,
        connections,
        engines,
        settings,
    )
    assert len(store.history(first.conversation_id)) == 4
    assert usage() > alone  # the first exchange was part of the prompt
    store.reset(first.conversation_id, cid)
    run(
        again(store, connections, first, prompt="My name is Zebulon."),
        store,
        connections,
        engines,
        settings,
    )
    assert usage() == alone  # forgotten
    assert len(store.history(first.conversation_id)) == 2


def test_history_is_trimmed_to_its_cap(store, connections, llama_engine, table):
    settings = InferenceSettings(table_name=table, history_max_chars=150)
    engines = Loaded(llama_engine)
    dispatch = start(store, connections, prompt="a" * 100, max_tokens=8)
    run(dispatch, store, connections, engines, settings)
    second = again(store, connections, dispatch, prompt="b" * 20, max_tokens=8)
    run(second, store, connections, engines, settings)
    turns = store.history(dispatch.conversation_id)
    assert turns[0] == {"role": "user", "content": "b" * 20}  # the older exchange dropped
    assert sum(len(t["content"]) for t in turns) <= 150


@pytest.fixture(scope="module")
def small_context_engine():
    """The tiny model with a 256-token context: a few long turns overflow it."""
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    return LlamaCppEngine.load(str(default_model_path()), n_ctx=256, n_threads=1)


def test_an_emoji_and_cjk_conversation_of_ten_long_turns_keeps_answering(
    store, connections, small_context_engine, settings, capsys
):
    """Each turn is ~100 tokens (an emoji or a CJK character is ~3): the stored turns soon
    hold far more than the context, yet every reply is answered from the latest exchanges
    that fit, counted in the model's own tokens, with room for the reply."""
    engine, max_tokens = small_context_engine, 8
    prompts = ["\N{GRINNING FACE}" * 30, "漢字を書く" * 6] * 5
    engines = Loaded(engine)
    dispatch = None
    capsys.readouterr()
    for turn, prompt in enumerate(prompts):
        if dispatch is None:
            dispatch = start(store, connections, prompt=prompt, max_tokens=max_tokens)
            peer = connections.registry.get(dispatch.connection_id)
        else:
            dispatch = again(store, connections, dispatch, prompt=prompt, max_tokens=max_tokens)
        outcome = run(dispatch, store, connections, engines, settings)
        done = peer.messages[-1]
        assert done["type"] == "done", (turn, done)
        assert outcome.outcome == "done"
        alone = len(engine.tokenize_messages([{"role": "user", "content": prompt}]))
        assert done["usage"]["prompt_tokens"] + max_tokens <= engine.context_length
        if turn > 0:
            assert done["usage"]["prompt_tokens"] > alone  # the latest exchange came along
    turns = store.history(dispatch.conversation_id)
    assert len(turns) == 20  # all kept: within historyMaxChars...
    assert len(engine.tokenize_messages(turns)) > 3 * engine.context_length  # ...not tokens
    assert counted_error_codes(capsys.readouterr().out) == []


def test_a_prompt_too_long_for_the_context_is_the_users_and_no_engine_error(
    lambda_env, monkeypatch, store, connections, context, capsys
):
    """Through the real handler: 2,950 emoji pass the 8,000-character cap but not the
    8,192-token context. The client gets `context_length_exceeded` with the numbers; the
    metrics count it under that code, never `engine_error`; the conversation goes on."""
    from offline.default_model import default_model_path

    monkeypatch.setenv("ENGINE", "llamacpp")
    monkeypatch.setenv("MODEL_PATH", str(default_model_path()))
    from llambda.handlers import inference

    inference.DEPS.reset()
    prompt = "\N{GRINNING FACE}" * 2950
    assert len(prompt) <= RouterSettings.from_env().max_prompt_chars  # the router lets it by
    first = start(store, connections, prompt="Say hello.", max_tokens=8)
    peer = connections.registry.get(first.connection_id)
    assert inference.handler(first.to_event(), context)["outcome"] == "done"
    capsys.readouterr()

    too_long = again(store, connections, first, prompt=prompt, max_tokens=256)
    answer = inference.handler(too_long.to_event(), context)
    assert answer == {
        "outcome": "error",
        "reason": None,
        "completionTokens": 0,
        "errorCode": "context_length_exceeded",
    }
    error = peer.messages[-1]
    assert error["type"] == "error" and error["code"] == "context_length_exceeded"
    tokens = len(
        inference.DEPS.get().engines.engine.tokenize_messages([{"role": "user", "content": prompt}])
    )
    assert f"The message is {tokens} tokens" in error["message"]
    assert "at most 8128" in error["message"] and "8192" in error["message"]
    emitted = capsys.readouterr().out
    assert counted_error_codes(emitted) == ["context_length_exceeded"]
    assert "Replies" not in [name for name, _ in emitted_metrics(emitted)]
    assert "replyId" not in store.get(first.conversation_id)  # the lease is free
    assert len(store.history(first.conversation_id)) == 2  # nothing of it kept

    after = again(store, connections, first, prompt="Say hello again.", max_tokens=8)
    assert inference.handler(after.to_event(), context)["outcome"] == "done"
    emitted = capsys.readouterr().out
    assert counted_error_codes(emitted) == []
    assert "Replies" in [name for name, _ in emitted_metrics(emitted)]


def test_stop_through_the_store_ends_with_stopped(store, connections, llama_engine, settings):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: (
        m["type"] == "delta"
        and m["seq"] == 0
        and store.request_stop(dispatch.conversation_id, dispatch.connection_id)
    )
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert outcome.reason == "stopped" and outcome.completion_tokens < 400
    assert peer.messages[-1]["reason"] == "stopped"
    assert "replyId" not in store.get(dispatch.conversation_id)


def test_a_reset_mid_reply_stops_it_and_keeps_the_memory_empty(
    store, connections, llama_engine, settings
):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: (
        m["type"] == "delta"
        and m["seq"] == 0
        and store.reset(dispatch.conversation_id, dispatch.connection_id)
    )
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert outcome.reason == "stopped"
    assert store.history(dispatch.conversation_id) == []


def test_a_reply_whose_client_went_away_runs_on_and_is_kept_whole(
    store, connections, llama_engine, settings
):
    dispatch = start(store, connections, prompt="Tell me a short story.", max_tokens=60)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: m["type"] == "delta" and peer.vanish()
    sender = sender_for(dispatch, connections, settings)
    outcome = run_reply(dispatch, deps(store, Loaded(llama_engine), settings), sender)
    assert outcome.outcome == "kept"
    assert [m["type"] for m in peer.messages] == ["status", "delta"]
    # Every token was generated and kept, though the client saw one delta.
    assert len(sender.deltas) > 1
    assert store.history(dispatch.conversation_id)[-1] == {
        "role": "assistant",
        "content": "".join(sender.deltas),
    }
    found = store.attach(dispatch.conversation_id, new_id(), seen_seq=0, ttl_seconds=60)
    assert found.running_prompt is None and not found.interrupted


def test_with_no_client_back_within_the_grace_the_reply_stops_and_is_marked(
    store, connections, llama_engine, table
):
    settings = InferenceSettings(table_name=table, reply_grace_seconds=1, resume_poll_ms=20)
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=2000)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: m["type"] == "delta" and peer.vanish()
    sender = sender_for(dispatch, connections, settings)
    outcome = run_reply(dispatch, deps(store, Loaded(llama_engine), settings), sender)
    assert outcome.outcome == "expired" and outcome.completion_tokens < 2000
    kept = store.history(dispatch.conversation_id)[-1]["content"]
    assert kept == "".join(sender.deltas)  # as far as it got
    found = store.attach(dispatch.conversation_id, new_id(), seen_seq=0, ttl_seconds=60)
    assert found.interrupted and found.running_prompt is None


@pytest.mark.parametrize("when", ["before the sender noticed", "after the sender noticed"])
def test_a_client_attaching_mid_reply_gets_the_rest_without_gaps_or_duplicates(
    store, connections, llama_engine, settings, when
):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=120)
    old = connections.registry.get(dispatch.connection_id)
    new_cid = new_id()
    new = connections.connect(new_cid)
    sender = sender_for(dispatch, connections, settings)

    def attach():
        store.attach(dispatch.conversation_id, new_cid, seen_seq=1, ttl_seconds=60)

    def on_old(message):
        if message["type"] == "delta" and message["seq"] == 1:
            old.vanish()  # the client has seq 0 and 1
            if when == "before the sender noticed":
                attach()
            else:
                threading.Thread(
                    target=lambda: wait_until(lambda: sender.detached) and attach(),
                    daemon=True,
                ).start()

    old.on_message = on_old
    outcome = run_reply(dispatch, deps(store, Loaded(llama_engine), settings), sender)
    assert outcome.outcome == "done"
    had = [m for m in old.messages if m["type"] == "delta"]
    assert [m["seq"] for m in had] == [0, 1]
    got = new.messages
    # The reply answers the attach itself, before anything it replays.
    assert got[0] == {
        **dispatch.attached(reset=False),
        "conversation": dispatch.conversation_id,
    }
    assert got[0]["reply"] == {"prompt": "Tell me a very long story."}
    assert got[-1]["type"] == "done" and got[-1]["conversation"] == dispatch.conversation_id
    rest = [m for m in got if m["type"] == "delta"]
    assert [m["seq"] for m in had + rest] == list(range(len(had) + len(rest)))
    text = "".join(m["text"] for m in had + rest)
    assert store.history(dispatch.conversation_id)[-1] == {"role": "assistant", "content": text}


class AttachesBeforeTheLastWrite:
    """The real store, with a client attaching after the reply's last poll and before its
    last write (the race `finish_reply`'s answer closes)."""

    def __init__(self, store, attach) -> None:
        self._store = store
        self._attach = attach

    def __getattr__(self, name):
        return getattr(self._store, name)

    def finish_reply(self, *args, **kwargs):
        self._attach()
        return self._store.finish_reply(*args, **kwargs)


def test_a_client_attaching_as_the_reply_ends_still_gets_its_end(
    store, connections, llama_engine, settings
):
    dispatch = start(store, connections, prompt="Name three colours.", max_tokens=24)
    new_cid = new_id()
    new = connections.connect(new_cid)
    racing = AttachesBeforeTheLastWrite(
        store,
        lambda: store.attach(dispatch.conversation_id, new_cid, seen_seq=-1, ttl_seconds=60),
    )
    run(dispatch, racing, connections, Loaded(llama_engine), settings)
    got = new.messages
    assert got[0]["type"] == "attached" and got[0]["reply"] == {"prompt": "Name three colours."}
    assert got[-1]["type"] == "done"
    deltas = [m for m in got if m["type"] == "delta"]
    assert [m["seq"] for m in deltas] == list(range(len(deltas)))
    assert (
        "".join(m["text"] for m in deltas) == store.history(dispatch.conversation_id)[-1]["content"]
    )


def test_forgetting_the_conversation_mid_reply_stops_it_and_keeps_nothing(
    store, connections, llama_engine, settings
):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: m["type"] == "delta" and store.forget(dispatch.conversation_id)
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert outcome.outcome == "gone" and outcome.completion_tokens < 400
    assert store.get(dispatch.conversation_id) is None  # not brought back by the reply


def wait_until(predicate, timeout: float = 30) -> bool:
    """Wait on the reply's state; the bound only keeps a broken reply from hanging."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.002)
    return predicate()


class FailsMidReply(Engine):
    """Not a generation test: an engine whose failure arrives after some text."""

    kind = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def interrupt(self) -> None:
        pass

    def generate(self, request, on_text, should_stop) -> GenerationResult:
        on_text("Half an ans")
        raise self.error


@pytest.mark.parametrize(
    "error", [EngineError("llama.cpp failed while generating."), RuntimeError("segfault-ish")]
)
def test_engine_failure_mid_reply(store, connections, llama_engine, settings, error):
    dispatch = start(store, connections)
    peer = connections.registry.get(dispatch.connection_id)
    outcome = run(dispatch, store, connections, Loaded(FailsMidReply(error)), settings)
    assert outcome.error_code == "engine_error"
    last = peer.messages[-1]
    assert last["type"] == "error" and last["code"] == "engine_error"
    assert "segfault" not in last["message"]  # no internals leak to the client
    assert store.history(dispatch.conversation_id) == []
    # The connection stays usable: the lease is free and the next chat is answered.
    run(again(store, connections, dispatch), store, connections, Loaded(llama_engine), settings)
    assert peer.messages[-1]["type"] == "done"


def test_cold_start_tells_the_client_then_loads(store, connections, settings):
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    engines = EngineSource(lambda: LlamaCppEngine.load(str(default_model_path()), n_threads=1))
    dispatch = start(store, connections, max_tokens=4)
    peer = connections.registry.get(dispatch.connection_id)
    run(dispatch, store, connections, engines, settings)
    messages = plain(peer.messages)
    assert messages[0] == {"type": "status", "state": "loading"}
    assert messages[1] == {"type": "status", "state": "generating"}
    assert messages[-1]["type"] == "done" and messages[-1]["timing"]["init_ms"] > 0
    warm = again(store, connections, dispatch, max_tokens=4)
    before = len(peer.texts)
    run(warm, store, connections, engines, settings)
    assert plain(peer.messages)[before] == {"type": "status", "state": "generating"}
    assert peer.messages[-1]["timing"]["init_ms"] == 0


def test_load_failure_is_an_engine_error_and_frees_the_lease(store, connections, settings):
    def fail():
        raise EngineError("picoLLM could not activate the AccessKey.")

    dispatch = start(store, connections)
    peer = connections.registry.get(dispatch.connection_id)
    run(dispatch, store, connections, EngineSource(fail), settings)
    assert plain(peer.messages) == [
        {"type": "status", "state": "loading"},
        {
            "type": "error",
            "code": "engine_error",
            "message": "picoLLM could not activate the AccessKey.",
        },
    ]
    assert "replyId" not in store.get(dispatch.conversation_id)


def test_the_lambda_handler_end_to_end(lambda_env, monkeypatch, store, connections, context):
    """The real entry point with the stack's environment: engine from ENGINE/MODEL_PATH."""
    from offline.default_model import default_model_path

    monkeypatch.setenv("ENGINE", "llamacpp")
    monkeypatch.setenv("MODEL_PATH", str(default_model_path()))
    from llambda.handlers import inference

    inference.DEPS.reset()  # a new instance, built from this environment
    dispatch = start(store, connections, max_tokens=8)
    peer = connections.registry.get(dispatch.connection_id)
    # The API's own URL: the local endpoint override must win, as in the twin.
    event = dataclasses.replace(
        dispatch,
        callback_url="https://abc.execute-api.us-east-1.amazonaws.com/dev",
        prompt="Say hello.",
    ).to_event()
    answer = inference.handler(event, context)
    assert answer["outcome"] == "done"
    assert [m["type"] for m in peer.messages][:2] == ["status", "status"]
    assert peer.messages[-1]["type"] == "done"
    assert inference.handler({"nonsense": 1}, context) == {"outcome": "invalid"}


def test_picollm_without_its_secret_reports_engine_error(lambda_env, moto_server, table):
    from llambda.handlers import inference

    secret = moto_server.client("secretsmanager").create_secret(
        Name=new_id().strip("="), SecretString='{"accessKey": "not-a-real-key"}'
    )
    settings = InferenceSettings(
        table_name=table,
        engine="picollm",
        model_path="/nonexistent/model.pllm",
        access_key_secret_arn=secret["ARN"],
    )
    with pytest.raises(EngineError, match="picoLLM"):
        inference.load_configured_engine(settings, aws.secrets())
    with pytest.raises(EngineError, match="ACCESS_KEY_SECRET_ARN"):
        inference.load_configured_engine(InferenceSettings(engine="picollm"), aws.secrets())


def test_concurrent_watcher_and_generation_do_not_deadlock(store, connections, llama_engine, table):
    # A fast poll cadence exercises the watcher thread against the generating thread.
    settings = InferenceSettings(table_name=table, stop_poll_ms=10, lease_seconds=1)
    dispatch = start(store, connections, max_tokens=30)
    done = threading.Event()
    outcome = None

    def go():
        nonlocal outcome
        outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
        done.set()

    threading.Thread(target=go, daemon=True).start()
    assert done.wait(120)
    assert outcome.outcome == "done"


class WatchedStore:
    """The real store, with what the reply's watcher did made visible to the test: each
    lease renewal and each state it read, so the test waits on them, not on a clock."""

    def __init__(self, store) -> None:
        self._store = store
        self._changed = threading.Condition()
        self.renewals = 0
        self.states: list = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    def renew_lease(self, *args, **kwargs):
        renewed = self._store.renew_lease(*args, **kwargs)
        with self._changed:
            self.renewals += 1
            self._changed.notify_all()
        return renewed

    def reply_check(self, *args, **kwargs):
        check = self._store.reply_check(*args, **kwargs)
        with self._changed:
            self.states.append(check.state)
            self._changed.notify_all()
        return check

    def wait_for(self, predicate, timeout: float = 60) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)


def test_a_long_cold_load_keeps_the_lease_and_hears_a_stop(store, connections, llama_engine, table):
    from llambda.conversations import Busy, ReplyState

    # Polls every 0.5 s and a 2 s lease, shorter than the load: the watcher must renew
    # the lease while the model loads, and see a stop that arrives meanwhile.
    settings = InferenceSettings(table_name=table, stop_poll_ms=500, lease_seconds=2)
    release = threading.Event()
    watched = WatchedStore(store)

    def slow_load():
        assert release.wait(60)
        return llama_engine

    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    store.renew_lease(dispatch.conversation_id, dispatch.reply_id, 2)  # the router's lease
    peer = connections.registry.get(dispatch.connection_id)
    outcome = None

    def go():
        nonlocal outcome
        outcome = run(dispatch, watched, connections, EngineSource(slow_load), settings)

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    # Still loading, the watcher renews the lease again and again, so it stays held.
    assert watched.wait_for(lambda: watched.renewals >= 2)
    with pytest.raises(Busy):
        again(store, connections, dispatch)
    store.request_stop(dispatch.conversation_id, dispatch.connection_id)
    # The watcher's next poll reads the stop mark, still during the load.
    assert watched.wait_for(lambda: ReplyState.STOP in watched.states)
    release.set()
    worker.join(120)
    assert outcome.outcome == "done" and outcome.reason == "stopped"
    assert outcome.completion_tokens == 0  # stopped before the first token
    assert plain(peer.messages)[0] == {"type": "status", "state": "loading"}
    assert peer.messages[-1]["reason"] == "stopped"


def test_the_connection_is_free_before_the_client_hears_the_end(
    store, connections, llama_engine, settings
):
    """A client may send its next chat the moment it sees `done`: it must not be `busy`."""
    dispatch = start(store, connections)
    post = connection_poster(connections.client(), dispatch.connection_id)
    held_when_done_went_out = []

    def watching(data: bytes) -> None:
        if json.loads(data)["type"] == "done":
            held_when_done_went_out.append("replyId" in store.get(dispatch.conversation_id))
        post(data)

    sender = sender_for(dispatch, connections, settings, post=watching)
    outcome = run_reply(dispatch, deps(store, Loaded(llama_engine), settings), sender)
    assert outcome.outcome == "done"
    assert held_when_done_went_out == [False]


class DeniedPolls:
    """The real store, except that reading the item is denied, as without a read grant."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def reply_check(self, *args, **kwargs):
        from botocore.exceptions import ClientError

        error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
        raise ClientError(error, "GetItem")


def test_a_stop_poll_that_can_never_succeed_ends_the_reply_with_an_error(
    store, connections, llama_engine, table
):
    settings = InferenceSettings(table_name=table, stop_poll_ms=10)
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    outcome = run(dispatch, DeniedPolls(store), connections, Loaded(llama_engine), settings)
    assert outcome.outcome == "error"
    assert peer.messages[-1]["type"] == "error"
    assert "replyId" not in store.get(dispatch.conversation_id)  # the lease is free again
