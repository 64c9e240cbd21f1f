// Model output as Markdown, parsed by markdown-it (vendor/markdown-it, MIT) with raw HTML
// off: any markup in the text stays text. The page never takes markdown-it's HTML string;
// it walks markdown-it's tokens and makes each element with createElement, filling it with
// textContent, so nothing in a reply is ever parsed as HTML and nothing in it can run.
// Links are kept only for http, https and mailto; images become links (the page loads no
// picture a reply names).
//
// Parsing and rendering are separate so a streaming reply can keep the blocks that are
// finished (markdown_stream.js): `parseBlocks` gives each top-level block the lines it
// spans, and parsing from any block's first line gives the same blocks as from the top.

import markdownit from "./vendor/markdown-it/markdown-it.esm.min.mjs";
import { actionButton, element } from "./dom.js";

const SAFE_LINK = /^(https?:|mailto:)/i;

const md = markdownit("default", { html: false, linkify: true, typographer: false });
// markdown-it's own check refuses javascript:, vbscript:, file: and most data:; this page
// wants less still: a link in a reply leads to the web or to an e-mail, or it is text.
md.validateLink = (url) => SAFE_LINK.test(url.trim());

/** The parser the page renders with: tests compare this page's tree with its `render()`. */
export const markdownIt = md;

/**
 * A reply's headings as the page's outline has them. They sit under the page's own <h1>
 * (its name), and none skips a level, whichever levels the model wrote (it often starts at
 * `##`, or jumps from `#` to `###`): each heading is one level below the heading it falls
 * under, the nearest one before it written at a higher level; a reply's top headings are
 * <h2>, the deepest <h6>. Order and nesting are the Markdown's.
 */
export class Outline {
  constructor(open = []) {
    this.open = open; // Markdown levels of the headings the next one may fall under
  }

  /** The HTML level of the next heading, written at Markdown level `level` (1-6). */
  next(level) {
    while (this.open.length && this.open.at(-1) >= level) this.open.pop();
    this.open.push(level);
    return Math.min(this.open.length + 1, 6);
  }

  copy() {
    return new Outline([...this.open]);
  }
}

// How deep a reply's elements may nest. markdown-it stops block nesting at 100 levels but
// not emphasis (`*a *a *a … a* a* a*` nests as deep as it is long), and the browser's
// layout and the stream's merge walk the tree: past this depth, an opening token adds no
// element and its text goes into the deepest one. No real reply comes near it.
export const MAX_DEPTH = 32;

// Elements a token may become, by markdown-it's tag; anything else renders as its text.
const BLOCK_TAGS = new Set(["p", "ul", "ol", "li", "blockquote", "hr"]);
const TABLE_TAGS = new Set(["table", "thead", "tbody", "tr", "th", "td"]);
const INLINE_TAGS = new Set(["strong", "em", "s"]);

/**
 * @typedef {{start: number, next: number, tokens: object[]}} Block
 * One top-level block: `start` its first line, `next` the first line after it (blank lines
 * that only end it included), `tokens` markdown-it's tokens for it.
 */

/**
 * The top-level blocks of `text` (line endings already normalised to "\n").
 * @param {string} text
 * @returns {Block[]}
 */
export function parseBlocks(text) {
  const blocks = [];
  let open = null;
  for (const token of md.parse(text, {})) {
    if (open === null) {
      const [start, next] = token.map ?? [0, 0];
      open = { start, next, tokens: [] };
    }
    open.tokens.push(token);
    if (token.level === 0 && token.nesting !== 1) {
      blocks.push(open);
      open = null;
    }
  }
  return blocks;
}

/**
 * One block as safe elements.
 * @param {Block} block
 * @param {Outline} [outline] the headings before it (its own are added)
 */
export function renderBlock(block, outline = new Outline()) {
  const holder = document.createDocumentFragment();
  renderTokens(holder, block.tokens, outline);
  return holder.firstChild ?? element("p");
}

/**
 * Render model text into a DocumentFragment of safe elements.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderTokens(fragment, md.parse(String(text).replace(/\r\n?/g, "\n"), {}), new Outline());
  return fragment;
}

/** Block tokens into `root`: an element for each opening token, closed by its partner. */
function renderTokens(root, tokens, outline) {
  const stack = [root];
  for (const token of tokens) {
    const parent = stack.at(-1);
    if (token.nesting === -1) {
      stack.pop();
    } else if (token.nesting === 1) {
      // A tight list's paragraphs are hidden: the item holds the text itself.
      const flat = token.hidden || stack.length > MAX_DEPTH;
      const node = flat ? parent : blockElement(token, outline);
      if (node !== parent) parent.append(node);
      stack.push(node);
    } else if (token.type === "inline") {
      renderInline(parent, token.children ?? [], stack.length);
    } else if (token.type === "fence" || token.type === "code_block") {
      // The language is the info string's first word, escapes and entities undone, as
      // markdown-it's own fence rule reads it.
      const language = md.utils.unescapeAll(token.info).trim().split(/\s+/)[0] ?? "";
      parent.append(renderCode(language, token.content));
    } else if (token.type === "hr") {
      parent.append(element("hr"));
    } else if (token.content) {
      parent.append(document.createTextNode(token.content));
    }
  }
}

function blockElement(token, outline) {
  if (token.type === "heading_open") {
    return element(`h${outline.next(Number(token.tag.slice(1)))}`, "md-heading");
  }
  if (token.type === "table_open") return element("table", "md-table");
  if (TABLE_TAGS.has(token.tag)) {
    const cell = element(token.tag);
    const align = /text-align:(left|center|right)/.exec(token.attrGet("style") ?? "");
    if (align) cell.className = `align-${align[1]}`; // a class: the page's CSP allows no style=""
    return cell;
  }
  if (!BLOCK_TAGS.has(token.tag)) return element("div");
  const node = element(token.tag);
  if (token.tag === "ul" || token.tag === "ol") node.className = "md-list";
  // markdown-it names `start` only when it is not 1; without it, a list starts at 1.
  const start = token.attrGet("start");
  if (token.tag === "ol" && start !== null) node.start = Number(start);
  return node;
}

/** Inline tokens (text, `code`, emphasis, links, breaks) into `root`, `depth` deep. */
function renderInline(root, tokens, depth) {
  const stack = [root];
  for (const token of tokens) {
    const parent = stack.at(-1);
    if (token.nesting === 1 && depth + stack.length > MAX_DEPTH) {
      stack.push(parent); // too deep: its text goes where it is
      continue;
    }
    switch (token.type) {
      case "text":
        parent.append(document.createTextNode(token.content));
        break;
      case "code_inline":
        parent.append(element("code", undefined, token.content));
        break;
      case "softbreak":
        parent.append(document.createTextNode("\n"));
        break;
      case "hardbreak":
        parent.append(element("br"));
        break;
      case "link_open": {
        const link = safeLink(token.attrGet("href"), token.attrGet("title"));
        parent.append(link);
        stack.push(link);
        break;
      }
      case "image": {
        // The page loads no picture a reply names: its description, as a link to it.
        // Its words as markdown-it writes them into `alt`; with none, its address (a link
        // needs words to be a link a screen reader can name).
        const link = safeLink(token.attrGet("src"), token.attrGet("title"));
        link.textContent = altText(token.children ?? []) || token.attrGet("src") || "image";
        parent.append(link);
        break;
      }
      default:
        if (token.nesting === 1) {
          const node = element(INLINE_TAGS.has(token.tag) ? token.tag : "span");
          parent.append(node);
          stack.push(node);
        } else if (token.nesting === -1) {
          if (stack.length > 1) stack.pop();
        } else if (token.content) {
          parent.append(document.createTextNode(token.content));
        }
    }
  }
}

/** An image's description as plain text: what markdown-it's renderInlineAsText gives. */
function altText(tokens) {
  let text = "";
  for (const token of tokens) {
    if (token.type === "text" || token.type === "html_inline") text += token.content;
    else if (token.type === "image") text += altText(token.children ?? []);
    else if (token.type === "softbreak" || token.type === "hardbreak") text += "\n";
  }
  return text;
}

/** A link that opens apart from the page, or, for any other address, a plain span. */
function safeLink(href, title) {
  if (!href || !SAFE_LINK.test(href)) return element("span");
  const link = element("a");
  link.href = href;
  if (title) link.title = title;
  link.target = "_blank";
  link.rel = "noopener noreferrer nofollow";
  return link;
}

/**
 * A code block: a header with its language and a Copy button, then the code. The button
 * is acted on by the page (data-action), so the block itself carries no behaviour.
 */
function renderCode(language, content) {
  const code = content.endsWith("\n") ? content.slice(0, -1) : content;
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
