// A tiny, safe Markdown subset for model output: fenced code blocks, bullet and numbered
// lists, headings, paragraphs, `inline code` and **bold**. Every node is made with
// createElement and filled with textContent, so no model text is ever parsed as HTML and
// nothing in it can run script. Unclosed fences (a reply still streaming) render as code.
//
// Parsing and rendering are separate so a streaming reply can keep the blocks that are
// finished (markdown_stream.js): `parseBlocks` gives each block the lines it spans, and
// parsing from any block's first line gives the same blocks as parsing from the top.

import { actionButton, element } from "./dom.js";

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const CONTINUATION = /^\s{2,}\S/;
const INLINE = /(`[^`\n]+`|\*\*[^*\n]+\*\*)/;

/**
 * @typedef {{kind: "code", start: number, next: number, language: string, code: string}
 *   | {kind: "list", start: number, next: number, ordered: boolean, first: number, items: string[]}
 *   | {kind: "heading", start: number, next: number, level: number, text: string}
 *   | {kind: "paragraph", start: number, next: number, text: string}} Block
 * `start` is the block's first line; `next` the first line it did not take (the line that
 * ended it, or past the closing fence).
 */

/**
 * The blocks of `lines` (text split on "\n", line endings already normalised).
 * @param {string[]} lines
 * @returns {Block[]}
 */
export function parseBlocks(lines) {
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    let block = null;
    if (fence) block = parseFence(lines, i, fence[1], fence[2]);
    else if (BULLET.test(line) || NUMBERED.test(line)) block = parseList(lines, i);
    else if (HEADING.test(line)) {
      const [, hashes, text] = HEADING.exec(line);
      block = { kind: "heading", start: i, next: i + 1, level: hashes.length, text };
    } else if (line.trim() !== "") block = parseParagraph(lines, i);
    if (block) {
      blocks.push(block);
      i = block.next;
    } else {
      i += 1; // a blank line between blocks
    }
  }
  return blocks;
}

/** One block as safe elements. */
export function renderBlock(block) {
  switch (block.kind) {
    case "code":
      return renderCode(block);
    case "list": {
      const list = element(block.ordered ? "ol" : "ul", "md-list");
      if (block.ordered) list.start = block.first;
      for (const text of block.items) {
        const item = element("li");
        appendInline(item, text);
        list.append(item);
      }
      return list;
    }
    case "heading": {
      const heading = element("p", `md-heading md-h${block.level}`);
      appendInline(heading, block.text);
      return heading;
    }
    default: {
      const paragraph = element("p");
      appendInline(paragraph, block.text);
      return paragraph;
    }
  }
}

/**
 * Render model text into a DocumentFragment of safe elements.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  for (const block of parseBlocks(lines)) fragment.append(renderBlock(block));
  return fragment;
}

function parseFence(lines, start, marker, language) {
  const body = [];
  let i = start + 1;
  const closing = new RegExp(`^\\s*${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`);
  while (i < lines.length && !closing.test(lines[i])) {
    body.push(lines[i]);
    i += 1;
  }
  // Past the closing fence, or past the end when it never closed (still streaming).
  return { kind: "code", start, next: i + 1, language, code: body.join("\n") };
}

function parseList(lines, start) {
  const ordered = NUMBERED.test(lines[start]) && !BULLET.test(lines[start]);
  const pattern = ordered ? NUMBERED : BULLET;
  const items = [];
  let i = start;
  while (i < lines.length) {
    const match = pattern.exec(lines[i]);
    if (match) items.push(ordered ? match[2] : match[1]);
    else if (items.length && CONTINUATION.test(lines[i])) items[items.length - 1] += `\n${lines[i].trim()}`;
    else break;
    i += 1;
  }
  const first = ordered ? Number(NUMBERED.exec(lines[start])[1]) : 1;
  return { kind: "list", start, next: i, ordered, first, items };
}

function parseParagraph(lines, start) {
  const body = [];
  let i = start;
  while (
    i < lines.length &&
    lines[i].trim() !== "" &&
    !FENCE.test(lines[i]) &&
    !BULLET.test(lines[i]) &&
    !NUMBERED.test(lines[i]) &&
    !HEADING.test(lines[i])
  ) {
    body.push(lines[i]);
    i += 1;
  }
  return { kind: "paragraph", start, next: i, text: body.join("\n") };
}

/**
 * A code block: a header with its language and a Copy button, then the code. The button
 * is acted on by the page (data-action), so the block itself carries no behaviour.
 */
function renderCode({ language, code }) {
  const block = element("div", "code-block");
  const head = element("div", "code-head");
  head.append(element("span", "code-language", language || "code"));
  head.append(actionButton("copy-code", "Copy", language ? `Copy ${language} code` : "Copy code"));
  const pre = element("pre", "md-code");
  const codeElement = element("code", undefined, code);
  if (language) {
    block.dataset.language = language;
    pre.dataset.language = language;
    codeElement.className = `language-${language}`;
  }
  pre.append(codeElement);
  block.append(head, pre);
  return block;
}

/** Append text with `code` and **bold** spans; everything else stays plain text. */
function appendInline(parent, text) {
  // split() with a capturing group puts the matched spans at the odd indices.
  text.split(INLINE).forEach((part, index) => {
    if (!part) return;
    if (index % 2 === 1 && part.startsWith("`")) {
      parent.append(element("code", undefined, part.slice(1, -1)));
    } else if (index % 2 === 1) {
      parent.append(element("strong", undefined, part.slice(2, -2)));
    } else {
      parent.append(document.createTextNode(part));
    }
  });
}
