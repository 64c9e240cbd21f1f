// The message box and its buttons: Enter (or, on a touch screen, the Send button) sends;
// the box grows with its text, keeps a draft across reloads, counts characters near the
// stage's limit and refuses to send past it; its hint and its button follow the page's
// phase (Send, Stop, or Cancel for a prompt that has not gone yet).

import { Phase } from "./chat_state.js";

const DRAFT_KEY = "llambda.draft";
const COUNT_FROM = 0.8; // show the count from this share of the limit on

const HINTS = {
  [Phase.IDLE]: {
    keys: "Enter to send · Shift+Enter for a new line",
    touch: "Send sends · Enter starts a new line",
  },
  [Phase.QUEUED]: "Not sent yet · Cancel (or Esc) takes it back",
  [Phase.SENT]: "A reply is running · Stop (or Esc) ends it",
  [Phase.STREAMING]: "A reply is running · Stop (or Esc) ends it",
  [Phase.STOPPING]: "Stopping the reply…",
};
const EDITING_HINT = "Editing your last message · Enter sends it again · Esc cancels";

export class Composer {
  /**
   * @param {{form: HTMLFormElement, box: HTMLTextAreaElement, send: HTMLButtonElement,
   *   stop: HTMLButtonElement, hint: HTMLElement, count: HTMLElement}} elements
   * @param {{onSubmit: (text: string) => void, onStop: () => void, onCancelEdit: () => void}} handlers
   */
  constructor(elements, handlers) {
    Object.assign(this, elements);
    this.handlers = handlers;
    this.phase = Phase.IDLE;
    this.maxChars = Infinity;
    this.editing = false;
    this.draftBeforeEdit = "";
    // A touch screen's keyboard has no Shift+Enter: there Enter is a new line.
    this.touch = window.matchMedia("(pointer: coarse)").matches;
    this.box.enterKeyHint = this.touch ? "enter" : "send";
    this.form.dataset.input = this.touch ? "touch" : "keys";
    this.wire();
    this.restoreDraft();
    this.refresh();
  }

  get text() {
    return this.box.value;
  }

  get overLimit() {
    return this.box.value.length > this.maxChars;
  }

  /** The stage's prompt limit, in characters (config.json's maxPromptChars). */
  setLimit(maxChars) {
    this.maxChars = maxChars ?? Infinity;
    this.refresh();
  }

  setPhase(phase) {
    const focusWasOnHidden =
      document.activeElement === (phase === Phase.IDLE ? this.stop : this.send);
    this.phase = phase;
    this.refresh();
    // Focus goes to the box, never onto the other button, where a second Enter would act.
    if (focusWasOnHidden) this.focus();
  }

  focus() {
    this.box.focus();
  }

  clear() {
    this.box.value = "";
    this.changed();
  }

  /** Put a prompt back in the box without losing anything already typed there. */
  restore(text) {
    const current = this.box.value;
    if (current.trim() === "") this.box.value = text;
    else if (!current.includes(text)) this.box.value = `${text}\n\n${current}`;
    this.changed();
  }

  startEdit(text) {
    if (!this.editing) this.draftBeforeEdit = this.box.value;
    this.editing = true;
    this.box.value = text;
    this.changed();
    this.focus();
    this.box.setSelectionRange(text.length, text.length);
  }

  /** Leave editing; `keepText` false puts back what the box held before. */
  endEdit({ keepText }) {
    if (!this.editing) return;
    this.editing = false;
    if (!keepText) this.box.value = this.draftBeforeEdit;
    this.draftBeforeEdit = "";
    this.changed();
  }

  wire() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !this.touch) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Escape") {
        if (this.phase !== Phase.IDLE) {
          event.preventDefault();
          this.handlers.onStop();
        } else if (this.editing) {
          event.preventDefault();
          this.handlers.onCancelEdit();
        }
      }
    });
    this.box.addEventListener("input", () => this.changed());
    this.stop.addEventListener("click", () => this.handlers.onStop());
  }

  submit() {
    if (this.send.getAttribute("aria-disabled") === "true" && this.phase === Phase.IDLE) {
      this.focus();
      return;
    }
    this.handlers.onSubmit(this.box.value);
  }

  changed() {
    this.autosize();
    this.saveDraft();
    this.refresh();
  }

  refresh() {
    const idle = this.phase === Phase.IDLE;
    this.send.hidden = !idle;
    this.stop.hidden = idle;
    this.stop.textContent = this.phase === Phase.QUEUED ? "Cancel" : "Stop";
    this.form.dataset.phase = this.phase;
    const length = this.box.value.length;
    const over = length > this.maxChars;
    this.send.setAttribute("aria-disabled", String(over));
    const counting = Number.isFinite(this.maxChars) && length >= this.maxChars * COUNT_FROM;
    this.count.hidden = !counting;
    this.count.classList.toggle("over", over);
    if (counting) {
      const count = `${length.toLocaleString("en")} / ${this.maxChars.toLocaleString("en")}`;
      if (this.count.textContent !== count) this.count.textContent = count;
    }
    let hint;
    let kind = "idle";
    if (over) {
      const extra = (length - this.maxChars).toLocaleString("en");
      hint = `Too long to send: ${extra} characters over the limit of ${this.maxChars.toLocaleString("en")}.`;
      kind = "over";
    } else if (!idle) {
      hint = HINTS[this.phase];
      kind = this.phase;
    } else if (this.editing) {
      hint = EDITING_HINT;
      kind = "editing";
    } else {
      hint = this.touch ? HINTS[Phase.IDLE].touch : HINTS[Phase.IDLE].keys;
    }
    this.hint.dataset.kind = kind;
    if (this.hint.textContent !== hint) this.hint.textContent = hint;
  }

  autosize() {
    this.box.style.height = "auto";
    this.box.style.height = `${this.box.scrollHeight}px`;
  }

  saveDraft() {
    try {
      sessionStorage.setItem(DRAFT_KEY, this.box.value);
    } catch {
      // Storage can be unavailable (private mode); the box itself still holds the text.
    }
  }

  restoreDraft() {
    try {
      const draft = sessionStorage.getItem(DRAFT_KEY);
      if (draft) this.box.value = draft;
    } catch {
      // See saveDraft.
    }
    this.autosize();
  }
}
