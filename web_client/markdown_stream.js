// A reply's Markdown (markdown.js, markdown-it) as it streams in, without rebuilding itself. Blocks that can no longer
// change (every line they depend on is complete) are finished: they stay in the page as they
// are and are never parsed again. Only the open tail is parsed on each delta, and its new
// rendering is merged into the elements already shown (text grows with appendData), so a
// selection, a focused button or a scroll position in the reply survives the next delta,
// and a delta costs about the same at 100k characters as at 2k.

import { Outline, parseBlocks, renderBlock } from "./markdown.js";

// A table with more body rows than this streams row by row (streamTable): each row is
// parsed once, with the table's first two lines, instead of the whole table on every
// delta, which took half a second a draw at 100 KB.
const ROWS_BEFORE_ROW_BY_ROW = 20;

export class MarkdownStream {
  /**
   * @param {HTMLElement} container where the blocks go
   * @param {{onBlockFinished?: (node: Element) => void}} [hooks]
   */
  constructor(container, { onBlockFinished } = {}) {
    this.container = container;
    this.onBlockFinished = onBlockFinished;
    this.text = "";
    this.openFrom = 0; // offset in `text` where the open (still changing) blocks start
    this.openNodes = [];
    this.finished = []; // {node, start, outline}: finished blocks, in order
    this.outline = new Outline(); // the headings of the finished blocks
    this.endsWithCR = false;
    // A long open table, streamed row by row: {node, body, head, from, rows, provisional}.
    this.table = null;
  }

  /** Add streamed text; line endings are normalised even when "\r\n" is split in two. */
  append(delta) {
    let text = String(delta);
    if (text === "") return;
    if (this.endsWithCR && text.startsWith("\n")) text = text.slice(1);
    this.endsWithCR = text.endsWith("\r");
    this.text += text.replace(/\r\n?/g, "\n");
    this.update(false);
  }

  /** The text ended: every block is finished. */
  finish() {
    this.update(true);
  }

  /** More text will follow a finished text (Continue): its last block opens again. */
  reopen() {
    const last = this.finished.pop();
    if (!last) return;
    this.openNodes = [last.node];
    this.openFrom = last.start;
    this.outline = last.outline; // the headings before it
  }

  update(final) {
    if (this.table && this.streamTable(final)) return;
    const tail = this.text.slice(this.openFrom);
    const lines = tail.split("\n");
    const blocks = parseBlocks(tail);
    // A block is finished when every line it looked at, the one that ended it included, is
    // complete: the last line may still grow and change what it is (`1` into `1. item`,
    // `#` into `#tag`), and a list takes the blank lines after it until something else
    // begins.
    const lastLine = final ? lines.length : lines.length - 1;
    let finishedCount = 0;
    while (finishedCount < blocks.length && blocks[finishedCount].next < lastLine) {
      finishedCount += 1;
    }
    if (final) finishedCount = blocks.length;
    // Each block's headings take their levels from the headings before it (Outline).
    const outline = this.outline.copy();
    const after = [];
    const rendered = blocks.map((block) => {
      const node = renderBlock(block, outline);
      after.push(outline.copy());
      return node;
    });
    const nodes = mergeInto(this.container, this.openNodes, rendered);
    for (let k = 0; k < finishedCount; k += 1) {
      const start = this.openFrom + charsBefore(lines, 0, blocks[k].start);
      this.finished.push({ node: nodes[k], start, outline: this.outline });
      this.outline = after[k];
      this.onBlockFinished?.(nodes[k]);
    }
    const openFrom = this.openFrom;
    if (finishedCount > 0) {
      const next = blocks[finishedCount - 1].next;
      this.openFrom += charsBefore(lines, 0, Math.min(next, lines.length));
    }
    this.openNodes = nodes.slice(finishedCount);
    const open = blocks[finishedCount];
    if (!final && this.openNodes.length === 1 && open.tokens[0].type === "table_open") {
      const complete = lastLine - open.start - 2; // body lines, the growing one not counted
      if (complete > ROWS_BEFORE_ROW_BY_ROW) {
        const from = openFrom + charsBefore(lines, 0, open.start);
        this.startRowByRow(this.openNodes[0], from, lines.slice(open.start, open.start + 2), complete);
      }
    }
  }

  /** The open table goes on row by row from here: its first `rows` body lines are done. */
  startRowByRow(node, from, [header, delimiter], rows) {
    const body = node.querySelector(":scope > tbody");
    if (!body) return;
    // The growing line's row (if it is one yet) is drawn again with each delta.
    const extra = body.rows.length - rows;
    for (let k = 0; k < extra; k += 1) body.lastElementChild.remove();
    this.table = { node, body, head: `${header}\n${delimiter}\n`, from, rows, provisional: null };
    this.openFrom = from;
  }

  /**
   * The long open table's new lines, parsed with its first two lines only: complete rows are
   * added for good, the growing one is drawn again. False once the table has ended (or the
   * text did): then its last rows are in, it is finished, and the text after it is parsed
   * as usual.
   */
  streamTable(final) {
    const table = this.table;
    const lines = this.text.slice(table.from).split("\n");
    const fresh = lines.slice(2 + table.rows);
    const chunk = table.head + fresh.join("\n");
    const blocks = parseBlocks(chunk);
    const chunkLines = fresh.length + 2;
    const lastLine = final ? chunkLines : chunkLines - 1;
    const [first] = blocks;
    const tableEnd = first?.tokens[0].type === "table_open" ? first.tokens[0].map[1] : 2;
    const ended = final || blocks.length > 1 || tableEnd < lastLine;
    const drawn = first ? renderBlock(first) : null;
    const rows = [...(drawn?.querySelector(":scope > tbody")?.rows ?? [])];
    table.provisional?.remove();
    table.provisional = null;
    // Rows are in line order, one a line: row k is the table's body line rows + k.
    const complete = ended ? rows.length : Math.min(rows.length, lastLine - 2);
    table.body.append(...rows.slice(0, complete));
    table.rows += complete;
    if (!ended) {
      table.provisional = rows[complete] ?? null;
      if (table.provisional) table.body.append(table.provisional);
      return true;
    }
    this.table = null;
    this.finished.push({ node: table.node, start: table.from, outline: this.outline });
    this.onBlockFinished?.(table.node);
    this.openFrom = table.from + charsBefore(lines, 0, Math.min(2 + table.rows, lines.length));
    this.openNodes = [];
    return false;
  }
}

/** Characters from the start of line `from` to the start of line `to`. */
function charsBefore(lines, from, to) {
  let count = 0;
  for (let i = from; i < to; i += 1) count += lines[i].length + 1;
  return count;
}

/**
 * Make `container`'s `oldNodes` look like `newNodes`, keeping every old node that can stay.
 * @returns {Node[]} the nodes now in the container, in order
 */
function mergeInto(container, oldNodes, newNodes) {
  const kept = [];
  newNodes.forEach((fresh, i) => {
    const old = oldNodes[i];
    if (!old) {
      container.append(fresh);
      kept.push(fresh);
      return;
    }
    const merged = merge(old, fresh);
    if (merged !== old) old.replaceWith(merged);
    kept.push(merged);
  });
  for (const extra of oldNodes.slice(newNodes.length)) extra.remove();
  return kept;
}

/** `old` updated to match `fresh` when it is the same kind of node; otherwise `fresh`. */
function merge(old, fresh) {
  if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) return fresh;
  if (old.nodeType === Node.TEXT_NODE) {
    if (old.data !== fresh.data) {
      // Appending leaves a selection inside the old text where it was.
      if (fresh.data.startsWith(old.data)) old.appendData(fresh.data.slice(old.data.length));
      else old.data = fresh.data;
    }
    return old;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) return fresh;
  if (old.dataset.highlighted) return fresh; // coloured code is rebuilt, not merged
  if (old.dataset.keep !== undefined) return old; // a control showing its own state
  for (const { name } of [...old.attributes]) {
    if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const { name, value } of [...fresh.attributes]) {
    if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
  const oldChildren = [...old.childNodes];
  const freshChildren = [...fresh.childNodes];
  freshChildren.forEach((child, i) => {
    const current = oldChildren[i];
    if (!current) {
      old.append(child);
      return;
    }
    const merged = merge(current, child);
    if (merged !== current) current.replaceWith(merged);
  });
  for (const extra of oldChildren.slice(freshChildren.length)) extra.remove();
  return old;
}
