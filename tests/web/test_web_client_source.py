"""Rules the page's source keeps, checked without a browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

WEB_CLIENT = Path(__file__).resolve().parents[2] / "web_client"

# Every way a string can become markup or code in a page.
HTML_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
    r"createContextualFragment|DOMParser|srcdoc"
)


def test_no_script_reaches_an_html_sink():
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(WEB_CLIENT.glob("*.js"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HTML_SINKS.search(line)
    ]
    assert offenders == []


def test_the_page_is_static_files_only():
    names = {path.name for path in WEB_CLIENT.iterdir()}
    assert {"index.html", "style.css", "app.js", "config.json"} <= names
    assert all(Path(name).suffix in {".html", ".css", ".js", ".json"} for name in names), names


def test_the_default_config_points_at_make_dev():
    config = json.loads((WEB_CLIENT / "config.json").read_text())
    assert config == {"websocketUrl": "ws://127.0.0.1:8787/dev"}


def test_the_page_forbids_inline_script_by_policy():
    html = (WEB_CLIENT / "index.html").read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html)
    assert policy is not None
    assert "script-src 'self'" in policy.group(1)
    assert "unsafe-inline" not in policy.group(1)
    assert "<script>" not in html  # only the module file
