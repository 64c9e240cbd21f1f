// The conversation on screen. Everything from the server goes in as text: replies through
// the safe Markdown subset, error messages and notices through textContent.

import { renderMarkdown } from "./markdown.js";

export class ConversationView {
  /**
   * @param {{list: HTMLOListElement, empty: HTMLElement, scroller: HTMLElement}} elements
   */
  constructor({ list, empty, scroller }) {
    this.list = list;
    this.empty = empty;
    this.scroller = scroller;
  }

  get isEmpty() {
    return this.list.childElementCount === 0;
  }

  clear() {
    this.list.replaceChildren();
    this.empty.hidden = false;
  }

  /** The person's own message. */
  addPrompt(text) {
    const item = this.addItem("prompt", "You");
    const body = element("div", "bubble");
    body.textContent = text;
    item.append(body);
    return new PromptView(item, this);
  }

  /** A reply that is about to stream in. */
  startReply() {
    const item = this.addItem("reply", "Model");
    return new ReplyView(item, this);
  }

  /** A problem, in plain words, with the server's own message as detail. */
  addError(title, detail) {
    const item = this.addItem("error", "Problem");
    item.setAttribute("role", "alert");
    const body = element("div", "bubble");
    body.append(element("p", "error-title", title));
    if (detail) body.append(element("p", "error-detail", detail));
    item.append(body);
    return item;
  }

  /** A quiet line about the connection or the conversation. */
  addNotice(text) {
    const item = this.addItem("notice", null);
    item.append(element("p", "notice-text", text));
    return item;
  }

  addItem(kind, who) {
    // The person's own messages, errors and notices always come into view; a reply only
    // follows along while the reader is already at the bottom.
    const stick = kind !== "reply" || this.isNearBottom();
    this.empty.hidden = true;
    const item = element("li", `message ${kind}`);
    if (who) item.append(element("p", "who visually-hidden", `${who}:`));
    this.list.append(item);
    if (stick) this.scrollToEnd();
    return item;
  }

  isNearBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < 80;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

export class PromptView {
  constructor(item, view) {
    this.item = item;
    this.view = view;
    this.note = null;
  }

  setNote(text, kind) {
    const stick = this.view.isNearBottom();
    this.note?.remove();
    this.note = null;
    this.item.classList.remove("queued", "unsent");
    if (!text) return;
    this.item.classList.add(kind);
    this.note = element("p", "note", text);
    this.item.append(this.note);
    if (stick) this.view.scrollToEnd();
  }

  remove() {
    this.item.remove();
  }
}

export class ReplyView {
  constructor(item, view) {
    this.item = item;
    this.view = view;
    this.text = "";
    this.updates = 0;
    this.body = element("div", "bubble");
    this.body.append(typingIndicator());
    this.item.append(this.body);
    this.item.setAttribute("aria-busy", "true");
    this.item.classList.add("streaming");
  }

  get hasText() {
    return this.text.length > 0;
  }

  append(text) {
    if (typeof text !== "string" || text === "") return;
    const stick = this.view.isNearBottom();
    this.text += text;
    this.updates += 1;
    this.body.replaceChildren(renderMarkdown(this.text));
    this.item.dataset.updates = String(this.updates);
    if (stick) this.view.scrollToEnd();
  }

  /** The reply ended normally: show how it ended and its timing. */
  finish(reason, summary) {
    const stick = this.view.isNearBottom();
    this.settle();
    if (!this.hasText) this.body.replaceChildren(element("p", "muted", "(no text)"));
    const labels = {
      stopped: "Stopped",
      length: "Cut off at the length limit",
      stop: "Ended at a stop sequence",
    };
    const parts = [];
    if (labels[reason]) parts.push(labels[reason]);
    if (summary) parts.push(summary);
    this.item.dataset.reason = reason;
    if (parts.length) this.item.append(element("p", "meta", parts.join(" · ")));
    if (stick) this.view.scrollToEnd();
  }

  /** The reply did not finish (an error, or the connection dropped). */
  fail(note) {
    this.settle();
    if (!this.hasText) {
      this.item.remove();
      return;
    }
    const stick = this.view.isNearBottom();
    this.item.dataset.reason = "interrupted";
    this.item.append(element("p", "meta", note));
    if (stick) this.view.scrollToEnd();
  }

  settle() {
    this.item.classList.remove("streaming");
    this.item.setAttribute("aria-busy", "false");
  }
}

function typingIndicator() {
  const dots = element("span", "typing");
  dots.setAttribute("aria-label", "The model is thinking");
  dots.setAttribute("role", "img");
  for (let i = 0; i < 3; i += 1) dots.append(element("span", "dot"));
  return dots;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
