// One reply in the conversation: its text as it streams (markdown_stream.js), how it
// ended, its figures, and its buttons (Copy; Regenerate and Continue on the last one).
// Deltas are drawn at most once per RENDER_EVERY_MS: a burst (a resumed reply's stored
// deltas arrive together) is parsed once, not once per delta.

import { actionButton, element } from "./dom.js";
import { MarkdownStream } from "./markdown_stream.js";
import { highlightCodeBlock } from "./syntax_highlight.js";

// About the server's own coalescing of deltas (docs/protocol.md): a live reply is drawn as
// it comes, a burst once.
const RENDER_EVERY_MS = 50;
// A draw that took long (a huge open block of hostile Markdown, tests/web/hostile_markdown.py)
// spaces out the next ones: drawing takes at most a quarter of the main thread, and typing
// and scrolling stay responsive between draws.
const DRAW_SHARE = 4;
// A long text that comes at once (a conversation opened or reloaded, a burst of replayed
// deltas) is drawn this much at a time, one slice a task, so the page answers the person
// between slices instead of freezing while markdown-it parses 100 KB.
const SLICE_CHARS = 8192;

const ENDINGS = {
  stopped: "Stopped",
  length: "Cut off at the length limit",
  stop: "Ended at a stop sequence",
};

export class ReplyView {
  constructor(item, view) {
    this.item = item;
    this.view = view;
    this.updates = 0;
    this.textBefore = 0; // characters it had when a Continue began
    this.ending = null; // {reason, summary} once it has ended
    this.body = element("div", "bubble");
    this.markdown = new MarkdownStream(this.body, {
      onBlockFinished: (node) => {
        if (node.classList?.contains("code-block")) highlightCodeBlock(node);
      },
    });
    this.meta = null;
    this.actions = null;
    this.pending = ""; // text received, not drawn yet
    this.renderTimer = null;
    this.lastRender = -Infinity;
    this.renderEvery = RENDER_EVERY_MS;
    this.finishLater = false; // finish() came while slices were still to draw
    this.item.append(this.body);
    this.stream();
    view.register(item, this);
  }

  get text() {
    return this.markdown.text + this.pending;
  }

  /** Still in the conversation (not removed since). */
  get isShown() {
    return this.item.isConnected;
  }

  get hasText() {
    return this.text.length > 0;
  }

  /** Text came since it (last) started streaming. */
  get hasNewText() {
    return this.text.length > this.textBefore;
  }

  append(text) {
    if (typeof text !== "string" || text === "") return;
    this.body.querySelector(":scope > .typing")?.remove();
    this.body.querySelector(":scope > .empty-reply")?.remove();
    this.pending += text;
    this.updates += 1;
    this.item.dataset.updates = String(this.updates);
    if (this.renderTimer !== null) return;
    const wait = this.lastRender + this.renderEvery - performance.now();
    if (wait <= 0) this.render({ all: false });
    else this.renderTimer = setTimeout(() => this.render({ all: false }), wait);
  }

  /**
   * Draw the text received so far: all of it, or (`all` false) one slice, the rest in the
   * tasks after.
   */
  render({ all = true } = {}) {
    clearTimeout(this.renderTimer);
    this.renderTimer = null;
    if (this.pending !== "") {
      const start = performance.now();
      const slice = all ? this.pending : this.pending.slice(0, SLICE_CHARS);
      this.markdown.append(slice);
      this.pending = this.pending.slice(slice.length);
      this.lastRender = performance.now();
      this.renderEvery = Math.max(RENDER_EVERY_MS, DRAW_SHARE * (this.lastRender - start));
      if (this.pending !== "") this.renderTimer = setTimeout(() => this.render({ all: false }), 0);
      this.view.changed();
    }
    if (this.pending === "" && this.finishLater) {
      this.finishLater = false; // the text has ended and is all drawn now
      this.markdown.finish();
      this.view.changed();
    }
  }

  /** The text since it (last) started streaming is `text`: the whole of it, from the server. */
  replaceNewText(text) {
    const before = this.text.slice(0, this.textBefore);
    this.render();
    this.body.replaceChildren();
    this.markdown = new MarkdownStream(this.body, { onBlockFinished: this.markdown.onBlockFinished });
    this.append(before + text);
    this.render();
  }

  /** A note under a reply that is waiting (the connection dropped); null clears it. */
  setWaiting(note) {
    this.setMeta(note ?? "");
  }

  /** A finished reply the server cut short (no connection came back for it in time). */
  markCutOff(note) {
    this.item.dataset.reason = "interrupted";
    this.setMeta(note);
  }

  /** The reply ended normally: how it ended and its figures. */
  finish(reason, summary) {
    this.render({ all: false });
    this.settle();
    this.ending = { reason, summary };
    if (this.pending === "") this.markdown.finish();
    else this.finishLater = true; // once its last slice is drawn
    if (!this.hasText) {
      const words = reason === "stopped" ? "Stopped before any text." : "No text came back.";
      this.body.replaceChildren(element("p", "muted empty-reply", words));
    }
    const parts = [];
    if (ENDINGS[reason] && (reason !== "stopped" || this.hasText)) parts.push(ENDINGS[reason]);
    if (summary) parts.push(summary);
    this.item.dataset.reason = reason;
    this.setMeta(parts.join(" · "));
    this.setActions({});
  }

  /** The reply did not finish (an error, or the connection dropped). */
  fail(note) {
    this.render();
    this.settle();
    if (!this.hasText) {
      this.remove();
      return;
    }
    this.markdown.finish();
    this.item.dataset.reason = "interrupted";
    this.setMeta(note);
    this.setActions({});
  }

  /** Continue: more text is coming for this reply. */
  resume() {
    this.render();
    this.previous = { ending: this.ending, reason: this.item.dataset.reason, meta: this.meta?.textContent };
    this.textBefore = this.text.length;
    this.setMeta("");
    this.setActions(null);
    delete this.item.dataset.reason;
    this.markdown.reopen();
    this.stream();
    this.body.querySelector(":scope > .typing")?.remove(); // the caret says it is going on
    this.view.changed();
  }

  /** The Continue never started: back to how it ended before. */
  unresume() {
    this.settle();
    this.markdown.finish();
    const { ending, reason, meta } = this.previous ?? {};
    this.ending = ending ?? null;
    if (reason) this.item.dataset.reason = reason;
    this.setMeta(meta ?? "");
    this.setActions({});
  }

  /**
   * The buttons under it: Copy always; Regenerate and Continue when asked (the last reply).
   * @param {{regenerate?: boolean, continue?: boolean} | null} offer null: none at all
   */
  setActions(offer) {
    this.actions?.remove();
    this.actions = null;
    if (offer === null || !this.hasText) return;
    this.actions = element("div", "actions");
    this.actions.append(actionButton("copy-reply", "Copy", "Copy the reply"));
    if (offer.regenerate) {
      const again = actionButton("regenerate", "Regenerate", "Regenerate the reply");
      again.classList.add("turn-action");
      this.actions.append(again);
    }
    if (offer.continue) {
      const more = actionButton("continue", "Continue", "Continue the reply");
      more.classList.add("turn-action");
      this.actions.append(more);
    }
    this.item.append(this.actions);
    this.view.changed();
  }

  /** The reply as a screen reader should hear it once: its words, not its buttons. */
  spokenText() {
    this.render(); // every slice, so the words are all there
    const copy = this.body.cloneNode(true);
    copy.querySelectorAll(".code-head").forEach((head) => head.remove());
    return [...copy.children].map((block) => block.textContent.trim()).filter(Boolean).join("\n");
  }

  setHidden(hidden) {
    this.item.hidden = hidden;
    this.view.changed();
  }

  remove() {
    this.item.remove();
    this.view.changed();
  }

  stream() {
    this.item.classList.add("streaming");
    this.item.setAttribute("aria-busy", "true");
    if (!this.hasText) this.body.replaceChildren(typingIndicator());
  }

  settle() {
    this.item.classList.remove("streaming");
    this.item.setAttribute("aria-busy", "false");
    this.body.querySelector(":scope > .typing")?.remove();
  }

  setMeta(text) {
    this.meta?.remove();
    this.meta = text ? element("p", "meta", text) : null;
    if (this.meta) this.body.after(this.meta);
    this.view.changed();
  }
}

function typingIndicator() {
  const dots = element("span", "typing");
  dots.setAttribute("aria-label", "The model is thinking");
  dots.setAttribute("role", "img");
  for (let i = 0; i < 3; i += 1) dots.append(element("span", "dot"));
  return dots;
}
