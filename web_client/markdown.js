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

// A reply's headings sit under the page's own <h1> (its name): `#` is an <h2>, and so on,
// `#####` and `######` both <h6>, the last level HTML has.
const HEADING_SHIFT = 1;

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

/** One block as safe elements. */
export function renderBlock(block) {
  const holder = document.createDocumentFragment();
  renderTokens(holder, block.tokens);
  return holder.firstChild ?? element("p");
}

/**
 * Render model text into a DocumentFragment of safe elements.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderTokens(fragment, md.parse(String(text).replace(/\r\n?/g, "\n"), {}));
  return fragment;
}

/** Block tokens into `root`: an element for each opening token, closed by its partner. */
function renderTokens(root, tokens) {
  const stack = [root];
  for (const token of tokens) {
    const parent = stack.at(-1);
    if (token.nesting === -1) {
      stack.pop();
    } else if (token.nesting === 1) {
      // A tight list's paragraphs are hidden: the item holds the text itself.
      const node = token.hidden ? parent : blockElement(token);
      if (node !== parent) parent.append(node);
      stack.push(node);
    } else if (token.type === "inline") {
      renderInline(parent, token.children ?? []);
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

function blockElement(token) {
  if (token.type === "heading_open") {
    const level = Math.min(Number(token.tag.slice(1)) + HEADING_SHIFT, 6);
    return element(`h${level}`, "md-heading");
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

/** Inline tokens (text, `code`, emphasis, links, breaks) into `root`. */
function renderInline(root, tokens) {
  const stack = [root];
  for (const token of tokens) {
    const parent = stack.at(-1);
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
