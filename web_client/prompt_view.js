// The person's own message in the conversation: its text, a note while it waits or after
// it was refused, and Edit on the last one.

import { actionButton, element } from "./dom.js";

export class PromptView {
  constructor(item, view, text) {
    this.item = item;
    this.view = view;
    this.text = text;
    this.note = null;
    this.edit = null;
    item.append(element("div", "bubble", text));
    view.register(item, this);
  }

  /** @param {string | null} text @param {"queued" | "unsent"} [kind] */
  setNote(text, kind) {
    this.note?.remove();
    this.note = null;
    this.item.classList.remove("queued", "unsent");
    if (text) {
      this.item.classList.add(kind);
      this.note = element("p", "note", text);
      this.item.append(this.note);
    }
    this.view.changed();
  }

  /** Offer (or withdraw) "Edit" on this prompt. */
  setEditable(editable) {
    if (editable && !this.edit) {
      this.edit = element("div", "actions turn-actions");
      this.edit.append(actionButton("edit", "Edit", "Edit your last message"));
      this.item.append(this.edit);
    } else if (!editable && this.edit) {
      this.edit.remove();
      this.edit = null;
    }
    this.view.changed();
  }

  /** Shown as the message being edited in the box. */
  setEditing(editing) {
    this.item.classList.toggle("editing", editing);
  }

  setHidden(hidden) {
    this.item.hidden = hidden;
    this.view.changed();
  }

  remove() {
    this.item.remove();
    this.view.changed();
  }
}
