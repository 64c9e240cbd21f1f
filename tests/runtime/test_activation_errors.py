"""picoLLM's activation errors reach the client as `activation_limit` (issue 13, #10): an
operator's problem a resend will not fix, unlike `engine_error`."""

from __future__ import annotations

import re
from pathlib import Path

import picollm
import pytest

from llambda import protocol
from llambda.contract import ErrorCode
from llambda.dispatch import Dispatch
from llambda.engines import EngineError
from llambda.engines.picollm_engine import ActivationError, PicoLLMEngine, engine_error
from llambda.generation import EngineSource
from llambda.handlers import aws
from llambda.handlers.inference import InferenceDeps, run_reply
from llambda.sender import StreamSender, connection_poster
from llambda.settings import InferenceSettings

from .conftest import new_id

REPO = Path(__file__).resolve().parents[2]
ACTIVATION = [
    picollm.PicoLLMActivationError,
    picollm.PicoLLMActivationLimitError,
    picollm.PicoLLMActivationThrottledError,
    picollm.PicoLLMActivationRefusedError,
]


@pytest.mark.parametrize("cls", ACTIVATION)
def test_every_activation_error_gets_its_own_code(cls):
    error = cls("failed for KEY123", ["Picovoice Error (code `00000136`)"])
    mapped = engine_error(error, access_key="KEY123")
    assert isinstance(mapped, ActivationError) and isinstance(mapped, EngineError)
    assert mapped.code == ErrorCode.ACTIVATION_LIMIT == "activation_limit"
    assert "KEY123" not in str(mapped)


@pytest.mark.parametrize(
    "cls", [picollm.PicoLLMKeyError, picollm.PicoLLMIOError, picollm.PicoLLMRuntimeError]
)
def test_other_picollm_errors_stay_engine_errors(cls):
    mapped = engine_error(cls("x"))
    assert type(mapped) is EngineError
    assert getattr(mapped, "code", ErrorCode.ENGINE_ERROR) == ErrorCode.ENGINE_ERROR


def test_the_limit_message_says_why_and_what_to_do():
    message = str(engine_error(picollm.PicoLLMActivationLimitError("x")))
    assert "activation limit" in message
    assert "Lambda instance" in message and "llama.cpp" in message


def test_an_activation_failure_at_load_is_an_activation_error(tmp_path):
    def create(**kwargs):
        raise picollm.PicoLLMActivationLimitError("`pv_picollm_init` failed.")

    with pytest.raises(ActivationError) as failed:
        PicoLLMEngine.load(str(tmp_path / "m.pllm"), access_key="SECRETKEY", create=create)
    assert "SECRETKEY" not in str(failed.value)
    assert isinstance(failed.value.__cause__, picollm.PicoLLMActivationLimitError)


def test_an_activation_failure_while_generating_is_an_activation_error():
    class Loaded:
        model = "fake"

    engine = PicoLLMEngine(Loaded(), access_key="SECRETKEY")
    mapped = engine._engine_error(picollm.PicoLLMActivationThrottledError("later"))
    assert isinstance(mapped, ActivationError) and "throttled" in str(mapped)


def test_the_client_gets_activation_limit_and_the_connection_stays_usable(
    conversations, connections, table
):
    cid, conversation, reply_id = new_id(), new_id(), new_id()
    peer = connections.connect(cid)
    conversations.start(
        conversation, cid, reply_id, prompt="Hello", lease_seconds=60, ttl_seconds=600
    )
    dispatch = Dispatch(
        connection_id=cid,
        conversation_id=conversation,
        reply_id=reply_id,
        request_id="r",
        callback_url=connections.endpoint,
        prompt="Hello",
        options=protocol.ChatOptions(max_tokens=8),
        dispatched_at_ms=0,
    )

    def load():
        raise engine_error(picollm.PicoLLMActivationLimitError("x"))

    sender = StreamSender(
        connection_poster(connections.client(), cid), conversation_id=conversation, coalesce_ms=50
    )
    deps = InferenceDeps(
        settings=InferenceSettings(table_name=table),
        store=conversations,
        engines=EngineSource(load),
        connections=aws.ManagementApis(),
    )
    outcome = run_reply(dispatch, deps, sender)
    assert outcome.error_code == "activation_limit"
    error = peer.messages[-1]
    assert error["type"] == "error" and error["code"] == "activation_limit"
    assert "activation limit" in error["message"]
    assert "replyId" not in conversations.get(conversation)  # free for the next chat


def test_the_code_is_documented_and_explained_by_the_page():
    doc = (REPO / "docs" / "protocol.md").read_text()
    assert "| `activation_limit` |" in doc
    codes = set(ErrorCode)
    assert {c for c in codes if f"| `{c}` |" not in doc} == set()
    errors_js = (REPO / "web_client" / "errors.js").read_text()
    assert re.search(r"^\s+activation_limit: \"", errors_js, re.MULTILINE)
