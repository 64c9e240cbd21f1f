"""Every CommonMark spec example (the pinned `commonmark-spec` package) renders, through the
page's own `renderMarkdown` in the real browser, into the same tree as markdown-it's own
`render()` with the page's options (raw HTML off, the page's link rule), save for the
differences listed below, each with its reason. Both trees go through the same
normalisation, which is where each listed difference is applied, and nowhere else.

The server is scripted (scripted_server.py): it only serves the page.
"""

from __future__ import annotations

import pytest

from tests.web.dev_packages import commonmark_examples, package_version
from tests.web.page_helpers import connected
from tests.web.scripted_server import answering

pytestmark = pytest.mark.browser

# The page differs from markdown-it's HTML on purpose in these ways, and in no other.
ALLOWED_DIFFERENCES = {
    "code-header": "A code block has the page's header above it (its language and a Copy "
    "button) and a wrapper for the two; the <pre><code> inside is markdown-it's.",
    "code-last-newline": "markdown-it ends a code block's text with a newline; the page drops "
    "that one, so the block shows no empty last line.",
    "heading-levels": "Heading levels are renumbered to fit under the page's own <h1> (its "
    "name) without skipping a level: a reply's top headings are <h2>, and each other heading "
    "is one level below the one it falls under (the nearest before it written at a higher "
    "Markdown level), at most <h6>. Order and nesting stay markdown-it's.",
    "links-open-apart": "A link opens in a new tab, with rel=noopener noreferrer nofollow "
    "(target and rel are the page's own).",
    "empty-links-are-text": "A link with no address ([foo]()) is its text in a <span>: "
    'markdown-it\'s <a href=""> would lead back to this page.',
    "images-are-links": "The page loads no picture a reply names: an image is a link to it, "
    "named by its description (markdown-it's alt text), or by its address if it has none.",
    "align-by-class": "A table cell's alignment is a class, not style=\"\": the page's "
    "Content-Security-Policy allows no inline style.",
    "styling-hooks": "The page's classes (md-list, md-heading, md-code, md-table) and data-* "
    "attributes are hooks for its style sheet and highlighter; of these only the code's "
    "language-* class is compared.",
    "markup-whitespace": "Newlines markdown-it writes between tags (after <br>, around block "
    "elements) are the layout of its HTML source, not text: a reply's text is shown with "
    "white-space: pre-wrap, where they would be blank lines.",
}

# What markdown-it's default preset adds to CommonMark, and links the page's rule lets
# through (the spec's own examples link to /url, which the page keeps as text): the same
# comparison holds for these.
BEYOND_THE_SPEC = [
    "| Name | Score | Note |\n| :--- | ---: | :---: |\n| Ada | 10 | *top* |\n| Bob | 7 |\n",
    "| a |\n| - |\n",
    "~~gone~~ and ~one~",
    '![a *pic*](https://example.com/p.png "Its title") and ![](https://example.com/q.png)',
    '[docs](https://example.com/docs "The docs"), <https://example.org>, www.example.net, '
    "mail@example.com and [mail](mailto:a@example.com)",
    "[bad](javascript:alert(1)) [worse](JAVASCRIPT:alert(1)) [data](data:text/html,x) "
    "<javascript:alert(1)> [rel](/relative)",
    "1. one\n2. two\n\n3) three\n\n- [x] done\n- [ ] open\n",
    "# One\n## Two\n###### Six\nSetext\n---\n",
    "## Starts at two\n#### skips one\n### back\n# top\n> ### quoted\n- ##### listed\n",
]

# Both trees into one comparable form. `used` collects which listed difference each
# normalisation applied, so the list above stays exact.
COMPARE = """
async (examples) => {
  const { renderMarkdown, markdownIt } = await import("./markdown.js");
  const BLOCK = new Set(["P", "UL", "OL", "LI", "BLOCKQUOTE", "PRE", "TABLE", "THEAD", "TBODY",
    "TR", "TH", "TD", "HR", "H1", "H2", "H3", "H4", "H5", "H6", "DIV"]);
  const CONTAINERS = new Set(["UL", "OL", "BLOCKQUOTE", "TABLE", "THEAD", "TBODY", "TR", "DIV"]);
  const used = new Set();

  function fromPage(root) {
    for (const block of root.querySelectorAll("div.code-block")) {
      used.add("code-header");
      block.replaceWith(block.querySelector("pre"));
    }
    for (const link of root.querySelectorAll("a")) {
      if (link.hasAttribute("target") || link.hasAttribute("rel")) used.add("links-open-apart");
      link.removeAttribute("target");
      link.removeAttribute("rel");
    }
    for (const node of root.querySelectorAll("[class]")) {
      const align = /(?:^| )align-(left|center|right)(?: |$)/.exec(node.className);
      if (align) node.setAttribute("align", align[1]);
      keepLanguageClass(node);
    }
    for (const node of root.querySelectorAll("*")) {
      for (const name of Object.keys(node.dataset)) {
        used.add("styling-hooks");
        delete node.dataset[name];
      }
    }
    return root;
  }

  function fromMarkdownIt(root) {
    for (const code of root.querySelectorAll("pre > code")) {
      if (code.textContent.endsWith("\\n")) {
        used.add("code-last-newline");
        code.textContent = code.textContent.slice(0, -1);
      }
    }
    const open = []; // the Markdown levels a heading may fall under
    for (const heading of root.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
      used.add("heading-levels");
      const written = Number(heading.tagName[1]);
      while (open.length && open.at(-1) >= written) open.pop();
      open.push(written);
      const level = Math.min(open.length + 1, 6);
      const shifted = root.ownerDocument.createElement(`h${level}`);
      shifted.append(...heading.childNodes);
      heading.replaceWith(shifted);
    }
    for (const link of root.querySelectorAll('a[href=""]')) {
      used.add("empty-links-are-text");
      const span = root.ownerDocument.createElement("span");
      span.append(...link.childNodes);
      link.replaceWith(span);
    }
    for (const image of root.querySelectorAll("img")) {
      used.add("images-are-links");
      const link = root.ownerDocument.createElement("a");
      link.setAttribute("href", image.getAttribute("src"));
      if (image.hasAttribute("title")) link.setAttribute("title", image.getAttribute("title"));
      link.textContent = image.getAttribute("alt") || image.getAttribute("src");
      image.replaceWith(link);
    }
    for (const node of root.querySelectorAll("[class]")) keepLanguageClass(node);
    return root;
  }

  function keepLanguageClass(node) {
    const language = [...node.classList].find((name) => name.startsWith("language-"));
    if (language && node.tagName === "CODE") {
      node.className = language;
    } else {
      if (node.className) used.add("styling-hooks");
      node.removeAttribute("class");
    }
  }

  const isBlock = (node) => node?.nodeType === Node.ELEMENT_NODE && BLOCK.has(node.tagName);

  function serialise(node) {
    if (node.nodeType === Node.TEXT_NODE) return JSON.stringify(node.data);
    const attributes = [...node.attributes]
      .map((a) => `${a.name}=${JSON.stringify(a.value)}`)
      .sort();
    const children = [];
    for (const child of node.childNodes) {
      if (child.nodeType === Node.ELEMENT_NODE) {
        children.push(serialise(child));
        continue;
      }
      if (child.nodeType !== Node.TEXT_NODE) continue;
      let text = child.data;
      const before = text;
      if (child.previousSibling?.nodeName === "BR") text = text.replace(/^\\n/, "");
      if (isBlock(child.previousSibling)) text = text.replace(/^\\n+/, "");
      if (isBlock(child.nextSibling)) text = text.replace(/\\n+$/, "");
      if ((CONTAINERS.has(node.nodeName) || node.nodeName === "#document-fragment")
          && text.trim() === "") text = "";
      if (text !== before) used.add("markup-whitespace");
      if (text) children.push(JSON.stringify(text));
    }
    const name = node.nodeName.toLowerCase();
    return `<${[name, ...attributes].join(" ")}>${children.join("")}</${name}>`;
  }

  function tree(root) {
    root.normalize();
    return serialise(root);
  }

  const inert = document.implementation.createHTMLDocument("");
  const differing = [];
  for (const { markdown, number, section } of examples) {
    const page = document.createElement("div");
    page.append(renderMarkdown(markdown));
    // markdown-it's HTML in a document of its own, which loads nothing and applies no style.
    const wrapped = inert.createElement("div");
    // The one style markdown-it writes, a table cell's alignment, is read from its text:
    // the page's policy would refuse it as an attribute, even here.
    wrapped.innerHTML = markdownIt.render(markdown).replace(
      / style="text-align:(left|center|right)"/g,
      (_, align) => {
        used.add("align-by-class");
        return ` align="${align}"`;
      },
    );
    const [ours, theirs] = [tree(fromPage(page)), tree(fromMarkdownIt(wrapped))];
    if (ours !== theirs) differing.push({ number, section, markdown, ours, theirs });
  }
  return { differing, used: [...used].sort() };
}
"""


def test_every_spec_example_renders_as_markdown_it_renders_it(scripted, open_page):
    examples = commonmark_examples()
    assert package_version("commonmark-spec") == "0.31.2"
    assert len(examples) == 652
    examples += [
        {"number": f"extra {n}", "section": "beyond the spec", "markdown": text}
        for n, text in enumerate(BEYOND_THE_SPEC, 1)
    ]
    server = scripted(answering("x"))
    page = connected(open_page(server.http_url))
    result = page.evaluate(COMPARE, examples)
    assert result["differing"] == [], "\n".join(
        f"example {d['number']} ({d['section']}): {d['markdown']!r}\n  page:       {d['ours']}"
        f"\n  markdown-it: {d['theirs']}"
        for d in result["differing"]
    )
    # Each listed difference is one the corpus really shows, and each was needed.
    assert result["used"] == sorted(ALLOWED_DIFFERENCES)
