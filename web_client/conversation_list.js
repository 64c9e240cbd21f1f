// The conversations this browser has had, newest first, kept in localStorage (ids and
// titles only: the turns live on the server) and shown in the "Chats" panel, where each
// opens or is forgotten. A title is the first prompt's first line. The ids are capabilities
// (docs/protocol.md, "Conversations"): they stay in this browser's storage and nowhere else.

import { actionButton, closesLikeAMenu, element } from "./dom.js";

const STORAGE_KEY = "llambda.conversations";
const TITLE_CHARS = 60;
const KEPT = 100; // the oldest beyond this drop off the list (the server expires them anyway)

/** @typedef {{id: string, title: string, updated: number}} ConversationEntry */

export class ConversationList {
  /**
   * @param {{panel: HTMLDetailsElement, list: HTMLUListElement, empty: HTMLElement,
   *   exportButtons: HTMLButtonElement[]}} elements
   * @param {{onOpen: (id: string) => void, onForget: (id: string) => void}} handlers
   */
  constructor({ panel, list, empty, exportButtons }, { onOpen, onForget }) {
    this.panel = panel;
    this.list = list;
    this.empty = empty;
    this.exportButtons = exportButtons;
    this.current = null;
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      const id = button?.closest("li")?.dataset.id;
      if (!id) return;
      if (button.dataset.action === "open-chat") {
        panel.open = false;
        onOpen(id);
      } else if (button.dataset.action === "forget-chat") {
        onForget(id);
      }
    });
    closesLikeAMenu(panel);
    // Another tab started or forgot one: this tab's list follows.
    window.addEventListener("storage", (event) => {
      if (event.key === STORAGE_KEY) this.render();
    });
    this.render();
  }

  /** @returns {ConversationEntry[]} */
  get entries() {
    return readEntries();
  }

  has(id) {
    return this.entries.some((entry) => entry.id === id);
  }

  /** A conversation was started, or used: it goes to the top (titled by its first prompt). */
  touch(id, firstPrompt) {
    const entries = this.entries;
    const known = entries.find((entry) => entry.id === id);
    const entry = known ?? { id, title: titleOf(firstPrompt) };
    entry.updated = Date.now();
    writeEntries([entry, ...entries.filter((other) => other.id !== id)].slice(0, KEPT));
    this.render();
  }

  remove(id) {
    writeEntries(this.entries.filter((entry) => entry.id !== id));
    this.render();
  }

  /** The conversation the page shows (null: a new one, not started yet). */
  setCurrent(id) {
    this.current = id;
    this.render();
  }

  /** Export offers itself only when there is something to export. */
  setExportable(exportable) {
    for (const button of this.exportButtons) button.disabled = !exportable;
  }

  titleOf(id) {
    return this.entries.find((entry) => entry.id === id)?.title ?? "Conversation";
  }

  render() {
    const entries = this.entries;
    this.empty.hidden = entries.length > 0;
    this.list.replaceChildren(
      ...entries.map((entry) => {
        const item = element("li", "chat-entry");
        item.dataset.id = entry.id;
        // Named by what it shows (its title and when), as a speech user would say it.
        const open = actionButton("open-chat", "");
        open.append(element("span", "chat-title", entry.title));
        open.append(element("span", "chat-when", describeWhen(entry.updated)));
        if (entry.id === this.current) open.setAttribute("aria-current", "true");
        const forget = actionButton("forget-chat", "Forget", `Forget “${entry.title}”`);
        item.append(open, forget);
        return item;
      }),
    );
  }
}

export function titleOf(prompt) {
  const line = String(prompt ?? "").trim().split("\n")[0].trim();
  if (line === "") return "Conversation";
  return line.length > TITLE_CHARS ? `${line.slice(0, TITLE_CHARS - 1).trimEnd()}…` : line;
}

function describeWhen(time) {
  if (!Number.isFinite(time)) return "";
  const date = new Date(time);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/** @returns {ConversationEntry[]} */
function readEntries() {
  try {
    const entries = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
    if (!Array.isArray(entries)) return [];
    return entries.filter(
      (entry) => typeof entry?.id === "string" && typeof entry.title === "string",
    );
  } catch {
    return [];
  }
}

function writeEntries(entries) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(entries));
  } catch {
    // Storage can be unavailable (private mode): the list lasts as long as the page.
  }
}
