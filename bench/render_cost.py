"""What one streamed delta costs the chat page to show, at 2k, 30k and 100k characters.

    python -m bench.render_cost [--samples N]

In Chromium (Debian's, through Playwright, as the browser tests drive it), a reply of mixed
Markdown (paragraphs, lists, code blocks) is streamed into the page's own renderer
(web_client/markdown_stream.js) in deltas of DELTA_CHARS characters, about what the server
coalesces into one 50 ms message. Once the reply reaches each size, the next deltas are
timed one by one, each after a frame of the page, as they arrive: the renderer's work, then
scrolling to the end as the page follows a reply, with the style and layout that needs
(read back before the clock stops). The same is timed for rebuilding the whole reply from
its text on every delta (markdown.js's renderMarkdown), which is what the page did before
it kept its finished blocks (with today's stylesheet, which also spares layout of the
blocks out of view). The figure is the median per delta, in milliseconds; the goal is a
cost that stays about the same as the reply grows.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WEB_CLIENT = REPO / "web_client"
CHROMIUM = Path("/usr/bin/chromium")
SIZES = (2_000, 30_000, 100_000)
DELTA_CHARS = 40

# A blank page beside the chat page's modules, with its stylesheet and a reply's frame.
BENCH_PAGE = b"""<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/style.css"></head><body><div class="shell">
<ol class="messages"><li class="message reply streaming"><div class="bubble" id="bubble">
</div></li></ol></div></body></html>"""

# One stretch of a typical long reply, repeated to the largest size.
SAMPLE = """Here is how the pieces fit together, step by step.

1. Read the **input** and check it.
2. Keep a `cursor` into the text.
3. Emit each block once it is complete.

```python
def blocks(lines):
    for line in lines:
        if line.strip():
            yield line
```

The loop above skips blank lines; everything else goes through unchanged, so the
caller sees each block in order.

- first point
- second point, with `code`
- third point

"""

MEASURE = """
async ({ sizes, delta, samples, text }) => {
  const { MarkdownStream } = await import("/markdown_stream.js");
  const { renderMarkdown } = await import("/markdown.js");
  const bubble = document.getElementById("bubble");
  const page = document.scrollingElement;
  const frame = () => new Promise((done) => requestAnimationFrame(() => setTimeout(done)));
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  // One delta as the page shows it: the renderer, then the view follows the end (which
  // needs the layout), between two frames of the page.
  const timed = async (step) => {
    await frame();
    const start = performance.now();
    step();
    page.scrollTop = page.scrollHeight;
    bubble.lastElementChild?.getBoundingClientRect();
    return performance.now() - start;
  };
  const results = [];
  for (const size of sizes) {
    bubble.replaceChildren();
    const stream = new MarkdownStream(bubble);
    let at = 0;
    while (at < size) {
      stream.append(text.slice(at, at + delta));
      at += delta;
    }
    const kept = [];
    for (let i = 0; i < samples; i += 1) {
      const chunk = text.slice(at, at + delta);
      at += delta;
      kept.push(await timed(() => stream.append(chunk)));
    }
    const rebuilt = [];
    for (let i = 0; i < samples; i += 1) {
      const whole = text.slice(0, size + i * delta);
      rebuilt.push(await timed(() => bubble.replaceChildren(renderMarkdown(whole))));
    }
    results.push({ chars: size, kept_ms: median(kept), rebuilt_ms: median(rebuilt) });
  }
  return results;
}
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/bench.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(BENCH_PAGE)))
            self.end_headers()
            self.wfile.write(BENCH_PAGE)
        else:
            super().do_GET()

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def _serving() -> Iterator[str]:
    handler = functools.partial(_Handler, directory=str(WEB_CLIENT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bench.html"
    finally:
        server.shutdown()
        server.server_close()


def measure(samples: int = 15, browser: Any = None) -> dict[str, Any]:
    """Median milliseconds per delta at each size, kept blocks against a full rebuild.

    `browser`: a Playwright browser to use (the browser tests pass theirs); else one is
    launched here."""
    if browser is None:
        if not CHROMIUM.exists():
            return {"sizes": [], "note": "Debian's chromium is not installed (make browser)"}
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                return measure(samples, launched)
            finally:
                launched.close()
    largest = max(SIZES) + samples * DELTA_CHARS * 2
    text = SAMPLE * (largest // len(SAMPLE) + 1)
    with _serving() as url:
        page = browser.new_page(viewport={"width": 1000, "height": 860})
        try:
            page.goto(url)
            sizes = page.evaluate(
                MEASURE,
                {"sizes": list(SIZES), "delta": DELTA_CHARS, "samples": samples, "text": text},
            )
        finally:
            page.close()
    for row in sizes:
        row["kept_ms"] = round(row["kept_ms"], 2)
        row["rebuilt_ms"] = round(row["rebuilt_ms"], 2)
    return {"delta_chars": DELTA_CHARS, "samples": samples, "sizes": sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15, help="timed deltas per size")
    args = parser.parse_args(argv)
    result = measure(args.samples)
    print(json.dumps(result, indent=2))
    for row in result["sizes"]:
        print(
            f"{row['chars']:>7,} chars: {row['kept_ms']:6.2f} ms per delta "
            f"(rebuilding the whole reply: {row['rebuilt_ms']:.2f} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
