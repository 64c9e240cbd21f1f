// The conversation on screen: the list of messages and how it scrolls. Each card is built
// whole before it goes in, and the list scrolls after, so a new card is in view entirely.
// The view follows new text while the reader is at the bottom; once they scroll up it
// stays where they are and offers "Jump to latest".

import { element } from "./dom.js";
import { PromptView } from "./prompt_view.js";
import { ReplyView } from "./reply_view.js";

const NEAR_BOTTOM_PX = 80;

export class ConversationView {
  /**
   * @param {{list: HTMLOListElement, empty: HTMLElement, scroller: HTMLElement,
   *   jump: HTMLButtonElement}} elements
   */
  constructor({ list, empty, scroller, jump }) {
    this.list = list;
    this.empty = empty;
    this.scroller = scroller;
    this.jump = jump;
    this.following = true;
    this.pinnedTop = 0; // where the view last put the scroll position itself
    this.views = new WeakMap(); // list item -> its PromptView or ReplyView
    scroller.addEventListener("scroll", () => {
      // Only the reader scrolling up stops the following; text growing below does not.
      if (this.isNearBottom()) this.following = true;
      else if (scroller.scrollTop < this.pinnedTop - 2) this.following = false;
      this.showJump();
    });
    jump.addEventListener("click", () => this.scrollToEnd());
    // Whatever makes the conversation taller (a reply's buttons, coloured code, a wrap at a
    // new width) keeps the end in view while following.
    new ResizeObserver(() => this.changed()).observe(list);
  }

  get isEmpty() {
    return this.list.childElementCount === 0;
  }

  clear() {
    this.list.replaceChildren();
    this.empty.hidden = false;
    this.scrollToEnd();
  }

  /** The person's own message: always brought into view. */
  addPrompt(text) {
    const item = this.item("prompt", "You");
    const view = new PromptView(item, this, text);
    this.insert(item, { reveal: true });
    return view;
  }

  /** A reply that is about to stream in: followed only while the reader is at the bottom. */
  startReply() {
    const item = this.item("reply", "Model");
    const view = new ReplyView(item, this);
    this.insert(item);
    return view;
  }

  /** A problem, in plain words, with the server's own message and what became of the prompt. */
  addError(title, detail, note) {
    const item = this.item("error", "Problem");
    const body = element("div", "bubble");
    body.setAttribute("role", "alert"); // on its words: a list item keeps its own role
    body.append(element("p", "error-title", title));
    if (detail) body.append(element("p", "error-detail", detail));
    if (note) body.append(element("p", "error-note", note));
    item.append(body);
    this.insert(item, { reveal: true });
    return item;
  }

  /** A quiet line about the connection or the conversation; `before` puts it above a card. */
  addNotice(text, before = null) {
    const item = this.item("notice", null);
    item.append(element("p", "notice-text", text));
    if (before) {
      before.before(item);
      this.changed();
    } else {
      this.insert(item, { reveal: true });
    }
    return item;
  }

  /** Put a card last (a queued prompt sent after the notices that came while it waited). */
  moveToEnd(item) {
    if (item.isConnected && item !== this.list.lastElementChild) {
      this.list.append(item);
      this.scrollToEnd();
    }
  }

  viewOf(node) {
    const item = node.closest(".message");
    return item ? this.views.get(item) : undefined;
  }

  item(kind, who) {
    const item = element("li", `message ${kind}`);
    if (who) item.append(element("p", "who visually-hidden", `${who}:`));
    return item;
  }

  register(item, view) {
    this.views.set(item, view);
  }

  insert(item, { reveal = false } = {}) {
    const follow = reveal || this.following;
    this.empty.hidden = true;
    this.list.append(item);
    if (follow) this.scrollToEnd();
    else this.showJump();
  }

  /** Something in a card grew or shrank: keep following if the reader was. */
  changed() {
    if (this.following) this.scrollToEnd();
    else this.showJump();
  }

  isNearBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.pinnedTop = this.scroller.scrollTop;
    this.following = true;
    this.showJump();
  }

  showJump() {
    const hide = this.isNearBottom();
    if (this.jump.hidden === hide) return;
    if (hide && document.activeElement === this.jump) {
      // The button goes away under the keyboard: the box is where the person was headed.
      document.getElementById("prompt")?.focus();
    }
    this.jump.hidden = hide;
  }
}
