"""Rules the page's source keeps, checked without a browser."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from infra.config import DEV
from infra.constructs.web_client_hosting import page_config

WEB_CLIENT = Path(__file__).resolve().parents[2] / "web_client"
# The page's own modules; vendor/ holds third-party files exactly as published.
OWN_MODULES = sorted(WEB_CLIENT.glob("*.js"))
PRISM = WEB_CLIENT / "vendor" / "prismjs-1.30.0"
# `npm pack prismjs@1.30.0` (integrity sha512-DEvV2ZF2r2/63V+tK8hQvrR2ZGn10srHbXviTlcv7Kpz
# w8jWiNTqbVgjO3IY8RxrrOUF8VPMQQFysYYYv0YZxw==), these files copied unchanged from its
# package/ folder. To update: pack the new version, copy the same files, update this table.
# Each vendored file and its sha256: LICENSE, package.json, and components/<name>.min.js.
PRISM_FILES = {
    "LICENSE": "2b947f0901a7ffcf08a89957da9783c0e9c6e72cb6ce8e959f501ab5409e4d2b",
    "package.json": "3bfbf1cab7998881968bde6992e438372717a466470747cfde6500afb7eac56a",
    "prism-bash": "6260814110e5182f2956e3bd257429548d9dbf2a9b66a63719b26cf9fac966a7",
    "prism-c": "9e05cf21207bff46afbf80cb8f43bb58bc4a4a87b68f28bc0470342f69345209",
    "prism-clike": "c76ba4e240932bdc75546be30e550f5ba5e13815ff71511c76e9e27ac3072444",
    "prism-core": "6caad316dd991f24f8004e0b9c19c055cb5829ff65e973fbee406f96d81b8e7e",
    "prism-cpp": "12077d9ea67882c149066e94843a6ede9036994b3724bfc45b31d97619328e14",
    "prism-css": "8c9760dba7f26ea842016919544dd9b73a78a36d5b07a1e9842c333ed18ab6ae",
    "prism-diff": "f16816fb2242a84c6ff6715a48c6d0a3e469e3250912cb9f1b755ca537d02f48",
    "prism-go": "1225b4afb593126d4082da5fd2b131aede39831c2b2a62d6b07ea025acd2bf3f",
    "prism-java": "4c2dc81dfc9efa51e38a7573938065288c63c64850f01a32f8a7b20a3e24c5a7",
    "prism-javascript": "0345ea83e12b7b974e953c79a64dea35a40308309449db70b82020fb688ac321",
    "prism-json": "956d86baa5ae7ec4106758f354ac2d140bdcd7fc103dece02f73ed12b8d663e4",
    "prism-markup": "879fc9d256c352d980e053857fa707330853b8bfb67ce284ea661a24dec5756e",
    "prism-python": "ed4385685bcf2d4935c8dbbab4bde16603da1329e092d2bf36c3dadd67e9a85c",
    "prism-rust": "8ca261bb964333c717703059de8ff81e80a75d52c637913ef6f982da1ee82acb",
    "prism-sql": "3fc5f8ce69950ec73adc972f061df42aaea78faa4864709134ea2adc083f3a33",
    "prism-typescript": "852f5513bb9ca9db247f86ecfce74acc91c541749d34929157240518fef8152a",
    "prism-yaml": "719c8e8b8c344dc9de510c729f65ba840b1502a0a8e7e25e2ad19ee715f65c02",
}

MARKDOWN_IT = WEB_CLIENT / "vendor" / "markdown-it"
# `npm pack markdown-it@15.0.3` (integrity sha512-+Az7Ojz3iRGu8KYMvJ6xVhvrxP3eE+vEtJX75Ow88X
# BpcQNV/0lGX5ZynIIBftREo4DC2jsveAMDaeltmm8QvQ==): its LICENSE, package.json and the browser
# ES module (dist/browser/markdown-it.esm.min.mjs, its dependencies bundled), unchanged. To
# update: pack the new version, copy the same files, update this table.
MARKDOWN_IT_FILES = {
    "LICENSE": "792c48c5a849a15fdf9e37e8bcf9e6d1dd13b32b46c642a748a0a46a9919d473",
    "package.json": "43e11fe9c0cf180ceb0f6d62ddbb528caa11021af03df7e0d29049f3c628be5a",
    "markdown-it.esm.min.mjs": "d5432491790141da046b1197353705db03264f40b5727f3b4b591f5aba193e30",
}

# Every way a string can become markup or code in a page.
HTML_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
    r"createContextualFragment|DOMParser|srcdoc"
)


def test_no_script_reaches_an_html_sink():
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in OWN_MODULES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HTML_SINKS.search(line)
    ]
    assert offenders == []


def test_prism_is_asked_for_tokens_only():
    """Prism's own highlighting writes markup as a string; the page uses its tokenizer."""
    uses = {use for path in OWN_MODULES for use in re.findall(r"\bPrism\.(\w+)", path.read_text())}
    assert uses == {"languages", "tokenize"}, uses
    assert "manual: true" in (WEB_CLIENT / "prism_manual_mode.js").read_text()


def test_the_page_is_static_files_only():
    files = [p.relative_to(WEB_CLIENT) for p in WEB_CLIENT.rglob("*") if p.is_file()]
    names = {str(p) for p in files}
    assert {"index.html", "style.css", "app.js", "config.json"} <= names
    own = [p for p in files if p.parts[0] != "vendor"]
    assert all(p.suffix in {".html", ".css", ".js", ".json"} for p in own), own


def test_prism_is_vendored_unchanged_at_its_pinned_version_with_its_licence():
    files = {
        str(p.relative_to(PRISM)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in PRISM.rglob("*")
        if p.is_file()
    }
    assert files == {_vendored_path(name): digest for name, digest in PRISM_FILES.items()}
    assert sorted(p.name for p in (WEB_CLIENT / "vendor").iterdir()) == [
        "markdown-it",
        "prismjs-1.30.0",
    ]
    package = json.loads((PRISM / "package.json").read_text())
    assert (package["name"], package["version"], package["license"]) == ("prismjs", "1.30.0", "MIT")
    assert (PRISM / "LICENSE").read_text().startswith("MIT LICENSE")
    # Every vendored script is loaded by prism.js, and every one it loads is vendored.
    imported = re.findall(
        r'import "\./vendor/prismjs-1\.30\.0/([^"]+)";', (WEB_CLIENT / "prism.js").read_text()
    )
    assert sorted(imported) == sorted(
        _vendored_path(name) for name in PRISM_FILES if name.startswith("prism-")
    )


def test_markdown_it_is_vendored_unchanged_at_its_pinned_version_with_its_licence():
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in MARKDOWN_IT.rglob("*")
        if p.is_file()
    }
    assert files == MARKDOWN_IT_FILES
    package = json.loads((MARKDOWN_IT / "package.json").read_text())
    assert (package["name"], package["version"], package["license"]) == (
        "markdown-it",
        "15.0.3",
        "MIT",
    )
    # The page's one use of it: raw HTML off, and every link checked by the page's own rule.
    source = (WEB_CLIENT / "markdown.js").read_text()
    assert 'from "./vendor/markdown-it/markdown-it.esm.min.mjs"' in source
    assert "html: false" in source
    assert "md.validateLink = " in source


def _vendored_path(name: str) -> str:
    return f"components/{name}.min.js" if name.startswith("prism-") else name


def test_every_import_names_a_file_of_the_page():
    for path in OWN_MODULES:
        for target in re.findall(r'(?:import|from)\s*\(?\s*"(\./[^"]+)"', path.read_text()):
            assert (WEB_CLIENT / target).is_file(), f"{path.name} imports {target}"


def test_the_default_config_points_at_make_dev_with_the_dev_stages_caps():
    """The file the page uses without the stack: what the Dev stage writes, less the model
    (whichever model file a deploy names)."""
    config = json.loads((WEB_CLIENT / "config.json").read_text())
    expected = page_config(config=DEV, websocket_url="ws://127.0.0.1:8787/dev")
    del expected["model"]
    assert config == expected


def test_the_page_forbids_inline_script_by_policy():
    html = (WEB_CLIENT / "index.html").read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html)
    assert policy is not None
    assert "script-src 'self'" in policy.group(1)
    assert "unsafe-inline" not in policy.group(1)
    assert "<script>" not in html  # only the module file
