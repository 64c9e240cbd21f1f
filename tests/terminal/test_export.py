"""/export's two formats, from the server's `turns`."""

from __future__ import annotations

import json

from terminal_client.export import write_export

TURNS = [
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue — like the sea.\n\n* and teal"},
]


def test_markdown_has_each_turn_under_its_speaker_in_order(tmp_path):
    path = tmp_path / "chat.md"
    write_export(TURNS, path)
    assert path.read_text(encoding="utf-8") == (
        "# llambda conversation\n\n## You\n\nName a colour.\n\n"
        "## Assistant\n\nBlue — like the sea.\n\n* and teal\n"
    )


def test_json_is_the_turns_as_the_server_keeps_them(tmp_path):
    path = tmp_path / "chat.JSON"
    write_export(TURNS, path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"turns": TURNS}
