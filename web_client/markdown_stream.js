// A reply's Markdown (markdown.js, markdown-it) as it streams in, without rebuilding itself. Blocks that can no longer
// change (every line they depend on is complete) are finished: they stay in the page as they
// are and are never parsed again. Only the open tail is parsed on each delta, and its new
// rendering is merged into the elements already shown (text grows with appendData), so a
// selection, a focused button or a scroll position in the reply survives the next delta,
// and a delta costs about the same at 100k characters as at 2k.

import { parseBlocks, renderBlock } from "./markdown.js";

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
    this.finished = []; // {node, start}: finished blocks, in order
    this.endsWithCR = false;
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
  }

  update(final) {
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
    const nodes = mergeInto(this.container, this.openNodes, blocks.map(renderBlock));
    for (let k = 0; k < finishedCount; k += 1) {
      this.finished.push({ node: nodes[k], start: this.openFrom + charsBefore(lines, 0, blocks[k].start) });
      this.onBlockFinished?.(nodes[k]);
    }
    if (finishedCount > 0) {
      const next = blocks[finishedCount - 1].next;
      this.openFrom += charsBefore(lines, 0, Math.min(next, lines.length));
    }
    this.openNodes = nodes.slice(finishedCount);
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
