"""API keys against moto's DynamoDB server on the stack's table, and the CLI that makes
them: only the hash is stored, a key is found only whole, revoked keys stop working, and
each key has its own minute's rate window."""

from __future__ import annotations

import json

import pytest

from admin import apikey
from llambda.api_keys import KEY_PREFIX, ApiKeyStore, RateLimited, digest


class Clock:
    def __init__(self, ms: int = 60_000 * 1000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def keys(moto_server, table):
    store = ApiKeyStore(moto_server.client("dynamodb"), table, clock_ms=Clock())
    yield store
    for key in store.list_keys():
        store.revoke(key.key_id)


def test_a_new_key_is_stored_only_as_its_hash(keys, moto_server, table):
    made = keys.create("editor")
    assert made.key.startswith(KEY_PREFIX) and len(made.key) > 40
    scanned = json.dumps(moto_server.client("dynamodb").scan(TableName=table)["Items"])
    assert made.key not in scanned
    assert f"apikey#{digest(made.key)}" in scanned
    assert keys.verify(made.key) == made.info


@pytest.mark.parametrize(
    "presented", [None, "", "Bearer", "llk-", "sk-abc", "llk-" + "x" * 200, "llk-é"]
)
def test_missing_or_malformed_keys_are_refused(keys, presented):
    keys.create("editor")
    assert keys.verify(presented) is None


def test_only_the_whole_key_opens(keys):
    made = keys.create("editor")
    assert keys.verify(made.key[:-1]) is None
    assert keys.verify(made.key + "A") is None
    other = made.key[:-1] + ("A" if made.key[-1] != "A" else "B")
    assert keys.verify(other) is None


def test_a_revoked_key_no_longer_opens(keys):
    made, kept = keys.create("editor"), keys.create("notebook")
    assert keys.revoke(made.info.key_id) == made.info
    assert keys.verify(made.key) is None
    assert keys.verify(kept.key) == kept.info
    assert keys.revoke(made.info.key_id) is None
    assert keys.revoke(kept.key) == kept.info  # by the key itself


def test_revoking_needs_an_id_that_names_one_key(keys):
    made = keys.create("editor")
    assert keys.revoke(made.info.key_id[:4]) is None  # too short to name one key
    assert keys.verify(made.key) is not None


def test_each_key_has_its_own_rate_window(keys):
    clock = keys._now_ms
    first, second = keys.create("a"), keys.create("b")
    for _ in range(3):
        keys.admit(first.info, per_minute=3)
    with pytest.raises(RateLimited) as limited:
        keys.admit(first.info, per_minute=3)
    assert 1 <= limited.value.retry_after_s <= 60
    keys.admit(second.info, per_minute=3)  # another key is not counted with it
    clock.ms += 60_000  # the next minute opens a new window
    keys.admit(first.info, per_minute=3)


def test_a_revoked_key_is_not_admitted(keys):
    made = keys.create("a")
    keys.revoke(made.info.key_id)
    with pytest.raises(RateLimited):
        keys.admit(made.info, per_minute=3)


def test_the_cli_prints_a_key_once_lists_and_revokes(moto_server, table, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    where = ["--table", table, "--endpoint-url", moto_server.url, "--region", "us-east-1"]
    assert apikey.main(["create", *where, "--name", "my-editor"]) == 0
    printed = capsys.readouterr().out.splitlines()
    key = printed[-1]
    store = ApiKeyStore(moto_server.client("dynamodb"), table)
    info = store.verify(key)
    assert info is not None and info.name == "my-editor"
    assert apikey.main(["list", *where]) == 0
    listing = capsys.readouterr().out
    assert info.key_id in listing and "my-editor" in listing and key not in listing
    assert apikey.main(["revoke", *where, "--id", info.key_id]) == 0
    assert store.verify(key) is None
    assert apikey.main(["revoke", *where, "--id", info.key_id]) == 1
