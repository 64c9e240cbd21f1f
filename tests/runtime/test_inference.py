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
from llambda.handlers import aws
from llambda.handlers.inference import EngineSource, InferenceDeps, run_reply
from llambda.sender import StreamSender, connection_poster
from llambda.settings import InferenceSettings

from .conftest import new_id


class Loaded(EngineSource):
    def __init__(self, engine: Engine) -> None:
        super().__init__(lambda: engine)
        self.engine = engine


@pytest.fixture
def settings(table) -> InferenceSettings:
    return InferenceSettings(table_name=table)


def start(store, connections, *, prompt="Name three colours.", cid=None, **options):
    """Connect (if needed), take the lease as the router does, and build the dispatch."""
    if cid is None:
        cid = new_id()
        store.put(cid, source_ip="127.0.0.1", origin="", ttl_seconds=600)
        connections.connect(cid)
    reply_id = new_id()
    history = store.admit_chat(cid, reply_id, per_minute=100, lease_seconds=60, ttl_seconds=600)
    options.setdefault("max_tokens", 24)
    options.setdefault("temperature", 0.0)
    return Dispatch(
        connection_id=cid,
        reply_id=reply_id,
        request_id="r",
        callback_url=connections.endpoint,
        prompt=prompt,
        options=protocol.ChatOptions(**options),
        dispatched_at_ms=0,
        history=tuple(history.turns),
        epoch=history.epoch,
    )


def run(dispatch, store, connections, engines, settings):
    sender = StreamSender(
        connection_poster(connections.client(), dispatch.connection_id),
        coalesce_ms=settings.coalesce_ms,
    )
    return run_reply(dispatch, deps(store, engines, settings), sender)


def deps(store, engines, settings) -> InferenceDeps:
    return InferenceDeps(
        settings=settings, store=store, engines=engines, connections=aws.ManagementApis()
    )


def test_a_reply_streams_then_finishes(store, connections, llama_engine, settings):
    connections.faults.latency_ms = 15  # a network between Lambda and API Gateway
    dispatch = start(store, connections, prompt="Write a short poem about the sea.", max_tokens=40)
    peer = connections.registry.get(dispatch.connection_id)
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    messages = peer.messages
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
    item = store.get(dispatch.connection_id)
    assert "replyId" not in item  # lease released
    history = store.load_history(dispatch.connection_id).turns
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
        start(store, connections, cid=cid, prompt="What is my name?"),
        store,
        connections,
        engines,
        settings,
    )
    assert len(store.load_history(cid).turns) == 4
    assert usage() > alone  # the first exchange was part of the prompt
    store.reset(cid)
    run(
        start(store, connections, cid=cid, prompt="My name is Zebulon."),
        store,
        connections,
        engines,
        settings,
    )
    assert usage() == alone  # forgotten
    assert len(store.load_history(cid).turns) == 2


def test_history_is_trimmed_to_its_cap(store, connections, llama_engine, table):
    settings = InferenceSettings(table_name=table, history_max_chars=150)
    engines = Loaded(llama_engine)
    dispatch = start(store, connections, prompt="a" * 100, max_tokens=8)
    run(dispatch, store, connections, engines, settings)
    second = start(store, connections, cid=dispatch.connection_id, prompt="b" * 20, max_tokens=8)
    run(second, store, connections, engines, settings)
    turns = store.load_history(dispatch.connection_id).turns
    assert turns[0] == {"role": "user", "content": "b" * 20}  # the older exchange dropped
    assert sum(len(t["content"]) for t in turns) <= 150


def test_stop_through_the_store_ends_with_stopped(store, connections, llama_engine, settings):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: (
        m["type"] == "delta" and m["seq"] == 0 and store.request_stop(dispatch.connection_id)
    )
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert outcome.reason == "stopped" and outcome.completion_tokens < 400
    assert peer.messages[-1]["reason"] == "stopped"
    assert "replyId" not in store.get(dispatch.connection_id)


def test_a_reset_mid_reply_stops_it_and_keeps_the_memory_empty(
    store, connections, llama_engine, settings
):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: (
        m["type"] == "delta" and m["seq"] == 0 and store.reset(dispatch.connection_id)
    )
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert outcome.reason == "stopped"
    assert store.load_history(dispatch.connection_id).turns == []


class Recording(Engine):
    """The real engine, noting for each token whether the client was already gone."""

    kind = "llamacpp"

    def __init__(self, engine: Engine, gone) -> None:
        self.engine = engine
        self.gone = gone
        self.after_gone = 0

    def interrupt(self) -> None:
        self.engine.interrupt()

    def generate(self, request, on_text, should_stop):
        def note(text):
            if self.gone():
                self.after_gone += 1
            on_text(text)

        return self.engine.generate(request, note, should_stop)


def test_a_vanished_client_stops_generation_within_one_token(
    store, connections, llama_engine, settings
):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    peer.on_message = lambda m: m["type"] == "delta" and peer.vanish()
    sender = StreamSender(
        connection_poster(connections.client(), dispatch.connection_id), coalesce_ms=50
    )
    engine = Recording(llama_engine, lambda: sender.gone)
    outcome = run_reply(dispatch, deps(store, Loaded(engine), settings), sender)
    assert outcome.outcome == "gone" and outcome.completion_tokens < 400
    assert engine.after_gone <= 1
    assert store.get(dispatch.connection_id) is None  # nothing left behind
    assert [m["type"] for m in peer.messages] == ["status", "delta"]


def test_disconnect_mid_reply_stops_it(store, connections, llama_engine, settings):
    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    peer = connections.registry.get(dispatch.connection_id)
    # $disconnect deleted the record while the socket's last posts still land.
    peer.on_message = lambda m: m["type"] == "delta" and store.delete(dispatch.connection_id)
    outcome = run(dispatch, store, connections, Loaded(llama_engine), settings)
    assert outcome.outcome == "gone" and outcome.completion_tokens < 400
    assert store.get(dispatch.connection_id) is None


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
    assert store.load_history(dispatch.connection_id).turns == []
    # The connection stays usable: the lease is free and the next chat is answered.
    again = start(store, connections, cid=dispatch.connection_id)
    run(again, store, connections, Loaded(llama_engine), settings)
    assert peer.messages[-1]["type"] == "done"


def test_cold_start_tells_the_client_then_loads(store, connections, settings):
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    engines = EngineSource(lambda: LlamaCppEngine.load(str(default_model_path()), n_threads=1))
    dispatch = start(store, connections, max_tokens=4)
    peer = connections.registry.get(dispatch.connection_id)
    run(dispatch, store, connections, engines, settings)
    types = [m["type"] for m in peer.messages]
    assert peer.messages[0] == {"type": "status", "state": "loading"}
    assert peer.messages[1] == {"type": "status", "state": "generating"}
    assert types[-1] == "done" and peer.messages[-1]["timing"]["init_ms"] > 0
    warm = start(store, connections, cid=dispatch.connection_id, max_tokens=4)
    before = len(peer.texts)
    run(warm, store, connections, engines, settings)
    assert peer.messages[before] == {"type": "status", "state": "generating"}
    assert peer.messages[-1]["timing"]["init_ms"] == 0


def test_load_failure_is_an_engine_error_and_frees_the_lease(store, connections, settings):
    def fail():
        raise EngineError("picoLLM could not activate the AccessKey.")

    dispatch = start(store, connections)
    peer = connections.registry.get(dispatch.connection_id)
    run(dispatch, store, connections, EngineSource(fail), settings)
    assert peer.messages == [
        {"type": "status", "state": "loading"},
        {
            "type": "error",
            "code": "engine_error",
            "message": "picoLLM could not activate the AccessKey.",
        },
    ]
    assert "replyId" not in store.get(dispatch.connection_id)


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

    def reply_state(self, *args, **kwargs):
        state = self._store.reply_state(*args, **kwargs)
        with self._changed:
            self.states.append(state)
            self._changed.notify_all()
        return state

    def wait_for(self, predicate, timeout: float = 60) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)


def test_a_long_cold_load_keeps_the_lease_and_hears_a_stop(store, connections, llama_engine, table):
    from llambda.connections import Busy, ReplyState

    # Polls every 0.5 s and a 2 s lease, shorter than the load: the watcher must renew
    # the lease while the model loads, and see a stop that arrives meanwhile.
    settings = InferenceSettings(table_name=table, stop_poll_ms=500, lease_seconds=2)
    release = threading.Event()
    watched = WatchedStore(store)

    def slow_load():
        assert release.wait(60)
        return llama_engine

    dispatch = start(store, connections, prompt="Tell me a very long story.", max_tokens=400)
    store.renew_lease(dispatch.connection_id, dispatch.reply_id, 2)  # the router's lease
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
        store.admit_chat(
            dispatch.connection_id, new_id(), per_minute=100, lease_seconds=1, ttl_seconds=600
        )
    store.request_stop(dispatch.connection_id)
    # The watcher's next poll reads the stop mark, still during the load.
    assert watched.wait_for(lambda: ReplyState.STOP in watched.states)
    release.set()
    worker.join(120)
    assert outcome.outcome == "done" and outcome.reason == "stopped"
    assert outcome.completion_tokens == 0  # stopped before the first token
    assert peer.messages[0] == {"type": "status", "state": "loading"}
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
            held_when_done_went_out.append("replyId" in store.get(dispatch.connection_id))
        post(data)

    sender = StreamSender(watching, coalesce_ms=settings.coalesce_ms)
    outcome = run_reply(dispatch, deps(store, Loaded(llama_engine), settings), sender)
    assert outcome.outcome == "done"
    assert held_when_done_went_out == [False]


class DeniedPolls:
    """The real store, except that reading the item is denied, as without a read grant."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def reply_state(self, *args, **kwargs):
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
    assert "replyId" not in store.get(dispatch.connection_id)  # the lease is free again
