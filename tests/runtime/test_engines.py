"""The engines: real generation with llama.cpp on SmolLM2-135M, and picoLLM up to its
activation wall (no AccessKey here, no network)."""

from __future__ import annotations

import inspect

import picollm
import pytest

from llambda.contract import ErrorCode
from llambda.engines import ContextLengthExceeded, EngineError, GenerationRequest, load_engine
from llambda.engines.base import MIN_REPLY_TOKENS
from llambda.engines.picollm_engine import (
    ENDPOINT_REASONS,
    PicoLLMEngine,
    build_prompt,
    describe_error,
)
from llambda.protocol import ChatOptions


def ask(prompt: str, **kwargs) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": prompt}], options=ChatOptions(**kwargs)
    )


def test_llama_streams_what_it_returns(llama_engine):
    pieces = []
    result = llama_engine.generate(
        ask("Name three colours.", max_tokens=24, temperature=0), pieces.append, lambda: False
    )
    assert result.reason in ("end", "length")
    assert result.completion_tokens <= 24 and result.prompt_tokens > 5
    assert "".join(pieces) == result.text and result.text.strip()


def test_llama_length(llama_engine):
    result = llama_engine.generate(
        ask("Write a long story about a dragon.", max_tokens=5, temperature=0),
        lambda _: None,
        lambda: False,
    )
    assert (result.reason, result.completion_tokens) == ("length", 5)


def test_llama_end(llama_engine):
    result = llama_engine.generate(
        ask("Reply with the single word: yes", max_tokens=64, temperature=0),
        lambda _: None,
        lambda: False,
    )
    assert result.reason == "end" and result.completion_tokens < 64


def test_llama_stop_sequence_is_matched_and_not_included(llama_engine):
    pieces = []
    result = llama_engine.generate(
        ask("Count from 1 to 10, one number per line.", max_tokens=80, temperature=0, stop=("5",)),
        pieces.append,
        lambda: False,
    )
    assert result.reason == "stop"
    assert "4" in result.text and "5" not in result.text
    assert "".join(pieces) == result.text


def test_llama_should_stop_ends_before_the_next_token(llama_engine):
    pieces = []
    result = llama_engine.generate(
        ask("Write a long story about a dragon.", max_tokens=200, temperature=0),
        pieces.append,
        lambda: len(pieces) >= 3,
    )
    assert result.reason == "stopped"
    assert result.completion_tokens == 3 and len(pieces) == 3


def test_llama_interrupt_from_another_thread(llama_engine):
    pieces = []

    def on_text(text):
        pieces.append(text)
        if len(pieces) == 2:
            llama_engine.interrupt()

    result = llama_engine.generate(
        ask("Write a long story.", max_tokens=200, temperature=0), on_text, lambda: False
    )
    assert result.reason == "stopped" and result.completion_tokens == 2
    # The next generation is not affected by the earlier interrupt.
    again = llama_engine.generate(ask("Say hi.", max_tokens=3), lambda _: None, lambda: False)
    assert again.completion_tokens > 0


def test_llama_uses_the_gguf_chat_template(llama_engine):
    tokens = llama_engine.tokenize_messages([{"role": "user", "content": "hello"}])
    text = llama_engine._llm.detokenize(tokens, special=True).decode()
    assert "<|im_start|>user\nhello<|im_end|>" in text
    assert text.rstrip().endswith("<|im_start|>assistant")


def test_llama_remembers_earlier_turns(llama_engine):
    messages = [
        {"role": "user", "content": "My name is Zebulon."},
        {"role": "assistant", "content": "Nice to meet you, Zebulon."},
        {"role": "user", "content": "What is my name?"},
    ]
    result = llama_engine.generate(
        GenerationRequest(messages=messages, options=ChatOptions(max_tokens=20, temperature=0)),
        lambda _: None,
        lambda: False,
    )
    assert "Zebulon" in result.text


def test_llama_honours_a_seed_and_draws_afresh_without_one(llama_engine):
    def sample(seed):
        options = ChatOptions(max_tokens=24, temperature=1.5, seed=seed)
        request = GenerationRequest([{"role": "user", "content": "Tell me a story."}], options)
        return llama_engine.generate(request, lambda _: None, lambda: False).text

    first = sample(7)
    assert sample(7) == first  # at a high temperature: the seed decides every draw
    # A seeded reply leaves no seed behind: unseeded replies differ from one another.
    assert len({sample(None) for _ in range(3)}) > 1


def test_llama_drops_oldest_turns_to_fit_the_context():
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    small = LlamaCppEngine.load(str(default_model_path()), n_ctx=512, n_threads=1)
    old = "word " * 150  # ~150 tokens each
    messages = [
        {"role": "user", "content": old},
        {"role": "assistant", "content": old},
        {"role": "user", "content": old},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Say hi."},
    ]
    assert len(small.tokenize_messages(messages)) > 450  # all of it would not fit
    result = small.generate(
        GenerationRequest(messages=messages, options=ChatOptions(max_tokens=4)),
        lambda _: None,
        lambda: False,
    )
    assert result.prompt_tokens + 4 <= 512
    assert 150 < result.prompt_tokens < 300  # the oldest exchange dropped, the next kept


def test_llama_prompt_over_the_context_is_an_engine_error(llama_engine):
    with pytest.raises(EngineError, match="context"):
        llama_engine.generate(ask("word " * 9000, max_tokens=4), lambda _: None, lambda: False)


def test_an_emoji_prompt_under_the_character_cap_but_over_the_context_is_the_users(
    llama_engine,
):
    """2,950 emoji are within the 8,000-character cap, yet ~3 tokens each: the prompt
    alone overflows the 8,192-token context. The user's input, with its own code."""
    prompt = "\N{GRINNING FACE}" * 2950
    tokens = len(llama_engine.tokenize_messages([{"role": "user", "content": prompt}]))
    assert tokens > llama_engine.context_length  # the model's own count, not characters
    with pytest.raises(ContextLengthExceeded) as refused:
        llama_engine.generate(ask(prompt, max_tokens=256), lambda _: None, lambda: False)
    assert refused.value.code == ErrorCode.CONTEXT_LENGTH_EXCEEDED
    limit = llama_engine.context_length - MIN_REPLY_TOKENS
    assert (refused.value.prompt_tokens, refused.value.limit) == (tokens, limit)
    assert f"{tokens} tokens" in str(refused.value) and f"at most {limit}" in str(refused.value)


@pytest.fixture(scope="module")
def small_llama():
    """The tiny model with a 512-token context, so the context's edges are cheap to reach."""
    from llambda.engines.llamacpp_engine import LlamaCppEngine
    from offline.default_model import default_model_path

    return LlamaCppEngine.load(str(default_model_path()), n_ctx=512, n_threads=1)


def prompt_of(engine, tokens: int) -> str:
    """A user message whose rendered prompt is exactly `tokens` of `engine`'s tokens."""

    def count(words: int) -> int:
        text = " ".join(["word"] * words)
        return len(engine.tokenize_messages([{"role": "user", "content": text}]))

    words = tokens - count(0)
    while count(words) > tokens:  # the template's own tokens around the message
        words -= 1
    assert count(words) == tokens
    return " ".join(["word"] * words)


def test_history_gives_way_so_the_reply_keeps_its_max_tokens(small_llama):
    old = "猫" * 100  # ~330 tokens an exchange's half: two of them cannot stay
    messages = [
        {"role": "user", "content": old},
        {"role": "assistant", "content": old},
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "new question"},
    ]
    fitted = small_llama.fit(
        GenerationRequest(messages=messages, options=ChatOptions(max_tokens=100))
    )
    assert fitted.messages == messages[2:]  # the oldest exchange went, the next stayed
    assert fitted.max_tokens == 100
    assert len(fitted.tokens) == len(small_llama.tokenize_messages(messages[2:]))


def test_a_long_prompt_that_fits_gets_what_is_left_of_the_context(small_llama):
    """Room for less than max_tokens, but at least MIN_REPLY_TOKENS: answered, with the
    reply capped so the two never overflow the context (reason `length` when it hits)."""
    prompt = prompt_of(small_llama, 512 - MIN_REPLY_TOKENS)
    messages = [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": prompt},
    ]
    request = GenerationRequest(
        messages=messages, options=ChatOptions(max_tokens=200, temperature=0)
    )
    fitted = small_llama.fit(request)
    assert fitted.messages == messages[2:] and fitted.max_tokens == MIN_REPLY_TOKENS
    result = small_llama.generate(request, lambda _: None, lambda: False)
    assert result.prompt_tokens == 512 - MIN_REPLY_TOKENS
    assert result.completion_tokens <= MIN_REPLY_TOKENS


def test_a_prompt_leaving_less_than_the_least_reply_is_refused(small_llama):
    prompt = prompt_of(small_llama, 512 - MIN_REPLY_TOKENS + 1)
    with pytest.raises(ContextLengthExceeded) as refused:
        small_llama.fit(ask(prompt, max_tokens=200))
    assert (refused.value.prompt_tokens, refused.value.limit) == (
        512 - MIN_REPLY_TOKENS + 1,
        512 - MIN_REPLY_TOKENS,
    )
    # A client asking for fewer tokens than the least reply needs only those.
    assert small_llama.fit(ask(prompt, max_tokens=8)).max_tokens == 8


def test_load_errors_are_engine_errors(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        load_engine("llamacpp", str(tmp_path / "missing.gguf"))
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf" * 100)
    with pytest.raises(EngineError, match="could not load"):
        load_engine("llamacpp", str(bogus))
    with pytest.raises(EngineError, match="Unknown engine"):
        load_engine("tensorflow", "x")


# picoLLM -----------------------------------------------------------------------------


@pytest.fixture
def fake_pllm(tmp_path):
    path = tmp_path / "tiny.pllm"
    path.write_bytes(bytes(range(256)) * 16)
    return path


def test_picollm_create_gets_our_arguments_and_its_error_is_mapped(fake_pllm):
    seen = {}

    def create(**kwargs):  # the real picollm.create, with its arguments recorded
        seen.update(kwargs)
        return picollm.create(**kwargs)

    with pytest.raises(EngineError) as failed:
        PicoLLMEngine.load(str(fake_pllm), access_key="bogus-access-key", create=create)
    assert seen == {
        "access_key": "bogus-access-key",
        "model_path": str(fake_pllm),
        "device": "best",
    }
    assert isinstance(failed.value.__cause__, picollm.PicoLLMError)
    message = str(failed.value)
    assert "picoLLM" in message and "bogus-access-key" not in message


def test_picollm_through_load_engine(fake_pllm):
    with pytest.raises(EngineError, match="picoLLM"):
        load_engine("picollm", str(fake_pllm), "bogus-access-key")
    with pytest.raises(EngineError, match="picoLLM"):
        load_engine("picollm", str(fake_pllm.with_name("missing.pllm")), "bogus-access-key")
    with pytest.raises(EngineError, match="AccessKey"):
        load_engine("picollm", str(fake_pllm), None)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (picollm.PicoLLMActivationError("x"), "activate the AccessKey"),
        (picollm.PicoLLMActivationLimitError("x"), "activation limit"),
        (picollm.PicoLLMActivationThrottledError("x"), "throttled"),
        (picollm.PicoLLMActivationRefusedError("x"), "refused"),
        (picollm.PicoLLMInvalidArgumentError("x"), "rejected its arguments"),
        (picollm.PicoLLMKeyError("x"), "rejected the AccessKey"),
        (picollm.PicoLLMIOError("x"), "could not read the model"),
        (picollm.PicoLLMMemoryError("x"), "not enough memory"),
        (picollm.PicoLLMRuntimeError("failed for KEY123"), "picoLLM failed: failed for ***"),
    ],
)
def test_picollm_errors_read_clearly_without_the_key(error, words):
    assert words in describe_error(error, access_key="KEY123")


def test_picollm_endpoints_map_to_our_reasons():
    assert {e.name: ENDPOINT_REASONS[e.name] for e in picollm.PicoLLMEndpoints} == {
        "END_OF_SENTENCE": "end",
        "COMPLETION_TOKEN_LIMIT_REACHED": "length",
        "STOP_PHRASE_ENCOUNTERED": "stop",
        "INTERRUPTED": "stopped",
    }


def test_picollm_prompt_uses_its_dialog_class():
    dialog = picollm.Llama3ChatDialog(history=None)
    prompt = build_prompt(
        dialog,
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ],
    )
    assert prompt.index("Hi") < prompt.index("Hello!") < prompt.index("Bye")
    assert "<|start_header_id|>user<|end_header_id|>" in prompt
    assert prompt.rstrip().endswith("<|start_header_id|>assistant<|end_header_id|>")


class StandInPicoLLM:
    """A STAND-IN for the object `picollm.create` returns (the real one needs an AccessKey
    and Picovoice's servers). It streams a scripted completion word by word the way picoLLM
    does (the callback on the generating thread, `interrupt` ending it at the next token),
    uses the real library's dialog class, usage and endpoint types, and records each call so
    the test can check it against the installed `picollm` package's signatures."""

    model = "stand-in.pllm"

    def __init__(self, words, context_length=64):
        self.words = list(words)
        self.context_length = context_length
        self.calls: list[tuple[str, tuple, dict]] = []
        self._interrupted = False

    def get_dialog(self, mode=None, history=0, system=None):
        self.calls.append(("get_dialog", (), {"mode": mode, "history": history, "system": system}))
        return picollm.Phi2ChatDialog(history=history)

    def tokenize(self, text, bos, eos):
        self.calls.append(("tokenize", (text,), {"bos": bos, "eos": eos}))
        return [0] * (len(text.split()) + int(bos) + int(eos))  # a word is a token here

    def interrupt(self):
        self.calls.append(("interrupt", (), {}))
        self._interrupted = True

    def generate(self, prompt, **kwargs):
        self.calls.append(("generate", (prompt,), kwargs))
        self._interrupted = False
        limit = kwargs.get("completion_token_limit") or len(self.words)
        stops = kwargs.get("stop_phrases") or set()
        text, endpoint = "", picollm.PicoLLMEndpoints.END_OF_SENTENCE
        for count, word in enumerate(self.words):
            if self._interrupted:
                endpoint = picollm.PicoLLMEndpoints.INTERRUPTED
                break
            if count == limit:
                endpoint = picollm.PicoLLMEndpoints.COMPLETION_TOKEN_LIMIT_REACHED
                break
            piece = word if not text else " " + word
            if any(stop in text + piece for stop in stops):
                endpoint = picollm.PicoLLMEndpoints.STOP_PHRASE_ENCOUNTERED
                break
            text += piece
            kwargs["stream_callback"](piece)
        usage = picollm.PicoLLMUsage(
            prompt_tokens=len(prompt.split()), completion_tokens=len(text.split())
        )
        return picollm.PicoLLMCompletion(
            usage=usage, endpoint=endpoint, completion_tokens=[], completion=text
        )


def assert_calls_fit_the_installed_picollm(stand_in):
    """Every call `_generate` made binds to the real `picollm.PicoLLM` method's signature."""
    assert stand_in.calls
    for name, args, kwargs in stand_in.calls:
        inspect.signature(getattr(picollm.PicoLLM, name)).bind(object(), *args, **kwargs)
    assert isinstance(picollm.PicoLLM.context_length, property)
    assert isinstance(picollm.PicoLLM.model, property)


def pico_request(*messages, **options):
    options.setdefault("max_tokens", 10)
    return GenerationRequest(
        messages=[{"role": "user", "content": m} for m in messages], options=ChatOptions(**options)
    )


def test_picollm_generate_streams_passes_options_and_maps_the_end():
    stand_in = StandInPicoLLM(["one", "two", "three", "four"])
    engine = PicoLLMEngine(stand_in)
    pieces = []
    result = engine.generate(
        pico_request("Count.", temperature=0.3, top_p=0.8, seed=11), pieces.append, lambda: False
    )
    assert pieces == ["one", " two", " three", " four"]
    assert (result.reason, result.text, result.completion_tokens) == (
        "end",
        "one two three four",
        4,
    )
    [(_, (prompt,), kwargs)] = [c for c in stand_in.calls if c[0] == "generate"]
    assert "Count." in prompt
    assert kwargs["completion_token_limit"] == 10
    assert kwargs["stop_phrases"] is None
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["seed"]) == (0.3, 0.8, 11)
    assert_calls_fit_the_installed_picollm(stand_in)


def test_picollm_generate_maps_the_token_limit_and_stop_phrases():
    engine = PicoLLMEngine(StandInPicoLLM(["one", "two", "three", "four"]))
    limited = engine.generate(pico_request("Count.", max_tokens=2), lambda _: None, lambda: False)
    assert (limited.reason, limited.text) == ("length", "one two")
    stand_in = StandInPicoLLM(["one", "two", "three", "four"])
    engine = PicoLLMEngine(stand_in)
    stopped = engine.generate(
        pico_request("Count.", stop=("three",)), lambda _: None, lambda: False
    )
    assert (stopped.reason, stopped.text) == ("stop", "one two")
    generate_kwargs = next(c[2] for c in stand_in.calls if c[0] == "generate")
    assert generate_kwargs["stop_phrases"] == {"three"}
    assert "temperature" not in generate_kwargs  # None: picoLLM's own default
    assert_calls_fit_the_installed_picollm(stand_in)


def test_picollm_generate_stops_when_asked_and_when_interrupted():
    stand_in = StandInPicoLLM(["one", "two", "three", "four"])
    engine = PicoLLMEngine(stand_in)
    pieces = []
    result = engine.generate(pico_request("Count."), pieces.append, lambda: len(pieces) >= 2)
    assert pieces == ["one", " two"]  # the third token was never handed on
    assert result.reason == "stopped"
    assert ("interrupt", (), {}) in stand_in.calls

    # `interrupt()` from elsewhere (the watcher's stop) ends it the same way.
    stand_in = StandInPicoLLM(["one", "two", "three", "four"])
    engine = PicoLLMEngine(stand_in)

    def on_text(piece):
        if piece == "one":
            engine.interrupt()

    result = engine.generate(pico_request("Count."), on_text, lambda: False)
    assert result.reason == "stopped"
    assert result.text == "one"
    assert_calls_fit_the_installed_picollm(stand_in)


def test_picollm_generate_drops_the_oldest_turns_to_fit_the_context():
    stand_in = StandInPicoLLM(["ok"], context_length=40)
    engine = PicoLLMEngine(stand_in)
    old = " ".join(["old"] * 30)
    messages = [
        {"role": "user", "content": old},
        {"role": "assistant", "content": old},
        {"role": "user", "content": "new question"},
    ]
    engine.generate(
        GenerationRequest(messages=messages, options=ChatOptions(max_tokens=8)),
        lambda _: None,
        lambda: False,
    )
    [(_, (prompt,), _)] = [c for c in stand_in.calls if c[0] == "generate"]
    assert "new question" in prompt and "old" not in prompt
    assert_calls_fit_the_installed_picollm(stand_in)


def pico_words(engine, words: int) -> int:
    """The prompt tokens of one user message of `words` words, by the adapter's own count."""
    return len(engine.tokenize_messages([{"role": "user", "content": " ".join(["w"] * words)}]))


def test_picollm_caps_the_reply_at_what_the_prompt_leaves_of_the_context():
    stand_in = StandInPicoLLM(["ok"], context_length=300)
    engine = PicoLLMEngine(stand_in)
    words = 300 - MIN_REPLY_TOKENS - pico_words(engine, 0) - 6  # leaves 70 tokens
    assert 300 - pico_words(engine, words) == MIN_REPLY_TOKENS + 6
    messages = [{"role": "user", "content": " ".join(["w"] * words)}]
    engine.generate(
        GenerationRequest(messages=messages, options=ChatOptions(max_tokens=200)),
        lambda _: None,
        lambda: False,
    )
    [kwargs] = [c[2] for c in stand_in.calls if c[0] == "generate"]
    assert kwargs["completion_token_limit"] == MIN_REPLY_TOKENS + 6
    assert_calls_fit_the_installed_picollm(stand_in)


def test_picollm_refuses_a_prompt_that_cannot_fit_before_generating():
    stand_in = StandInPicoLLM(["ok"], context_length=300)
    engine = PicoLLMEngine(stand_in)
    words = 300 - MIN_REPLY_TOKENS - pico_words(engine, 0) + 1
    messages = [{"role": "user", "content": " ".join(["w"] * words)}]
    stand_in.calls.clear()
    with pytest.raises(ContextLengthExceeded) as refused:
        engine.generate(
            GenerationRequest(messages=messages, options=ChatOptions(max_tokens=200)),
            lambda _: None,
            lambda: False,
        )
    assert refused.value.code == "context_length_exceeded"
    assert (refused.value.prompt_tokens, refused.value.limit) == (
        300 - MIN_REPLY_TOKENS + 1,
        300 - MIN_REPLY_TOKENS,
    )
    assert [c[0] for c in stand_in.calls if c[0] == "generate"] == []
    # Each count is picoLLM's tokenizer over the prompt its dialog rendered, with BOS.
    [(_, (text,), kwargs)] = [c for c in stand_in.calls if c[0] == "tokenize"]
    assert text == build_prompt(picollm.Phi2ChatDialog(history=None), messages)
    assert kwargs == {"bos": True, "eos": False}
    assert_calls_fit_the_installed_picollm(stand_in)


class FailingTokenizer(StandInPicoLLM):
    def tokenize(self, text, bos, eos):
        super().tokenize(text, bos, eos)
        raise picollm.PicoLLMRuntimeError("tokenizer failed for KEY123")


def test_a_picollm_tokenizer_failure_is_an_engine_error_without_the_key():
    stand_in = FailingTokenizer(["ok"], context_length=300)
    engine = PicoLLMEngine(stand_in, access_key="KEY123")
    with pytest.raises(EngineError) as failed:
        engine.generate(
            GenerationRequest(
                messages=[{"role": "user", "content": "hi"}], options=ChatOptions(max_tokens=8)
            ),
            lambda _: None,
            lambda: False,
        )
    assert type(failed.value) is EngineError and failed.value.code == "engine_error"
    assert str(failed.value) == "picoLLM failed: tokenizer failed for ***"
    assert_calls_fit_the_installed_picollm(stand_in)
