// The chat page's view: it finds the page's elements, makes the views that draw into them
// (the conversation, the composer, the chats list, the settings, the status line) and hands
// them to the session core (session.js), which holds the conversation's state and applies
// every server message to it. What is here is only the page's own: its clicks, its export,
// and where to connect.

import { Announcer } from "./announcer.js";
import { copyText } from "./clipboard.js";
import { Composer } from "./composer.js";
import { loadPageConfig } from "./config.js";
import { Connection } from "./connection.js";
import { ConversationList, titleOf } from "./conversation_list.js";
import { ConversationView } from "./conversation_view.js";
import { actionButton } from "./dom.js";
import { PromptView } from "./prompt_view.js";
import { ReplyView } from "./reply_view.js";
import { createSession } from "./session.js";
import { Settings } from "./settings.js";
import { StatusLine } from "./status.js";
import * as memory from "./tab_memory.js";
import { download, fileName, toJson, toMarkdown } from "./transcript_export.js";

const byId = (id) => document.getElementById(id);
const view = new ConversationView({
  list: byId("messages"),
  empty: byId("empty"),
  scroller: byId("conversation"),
  jump: byId("jump"),
});
const status = new StatusLine({
  root: byId("status"),
  text: byId("status-text"),
  clock: byId("status-clock"),
});
const announcer = new Announcer(byId("announcer"));
const composer = new Composer(
  {
    form: byId("composer"),
    box: byId("prompt"),
    send: byId("send"),
    stop: byId("stop"),
    hint: byId("composer-hint"),
    count: byId("prompt-count"),
  },
  {
    onSubmit: (text) => session.submit(text),
    onStop: () => session.stop(),
    onCancelEdit: () => session.cancelEdit(),
  },
);
const chats = new ConversationList(
  {
    panel: byId("chats"),
    list: byId("chat-list"),
    empty: byId("chat-list-empty"),
    exportButtons: [byId("export-markdown"), byId("export-json")],
  },
  { onOpen: (id) => session.switchTo(id), onForget: (id) => session.forget(id) },
);
const settings = new Settings({
  panel: byId("settings"),
  maxTokens: byId("max-tokens"),
  temperature: byId("temperature"),
  reset: byId("settings-reset"),
  note: byId("settings-note"),
});

let connection = null;
let modelName = "";

/** The conversation as the session draws it: the view, less its elements. */
const conversation = {
  addPrompt: (text) => view.addPrompt(text),
  startReply: () => view.startReply(),
  addError: (title, detail, note) => view.addError(title, detail, note),
  addNotice(text, before = null) {
    const item = view.addNotice(text, before?.item ?? null);
    return {
      item,
      setText: (words) => {
        item.querySelector(".notice-text").textContent = words;
      },
    };
  },
  addTakeBackNotice(text) {
    const item = view.addNotice(text);
    item.append(actionButton("take-back", "Take it back", "Take this conversation back to this tab"));
  },
  removeTakeBackNotices() {
    for (const button of byId("messages").querySelectorAll('[data-action="take-back"]')) {
      button.closest(".notice")?.remove();
    }
  },
  reinsert: (promptView) => view.insert(promptView.item, { reveal: true }),
  moveToEnd: (promptView) => view.moveToEnd(promptView.item),
  clear: () => view.clear(),
  showReconnect(shown) {
    byId("reconnect").hidden = !shown;
  },
  setPhase(phase) {
    // The last exchange's Regenerate, Edit and Continue wait while a turn is in flight.
    byId("messages").dataset.phase = phase;
  },
  get isEmpty() {
    return view.isEmpty;
  },
};

const session = createSession({
  view: conversation,
  status,
  composer,
  chats,
  settings,
  memory,
  announcer,
});
const state = session.state;

/** Every button in the conversation says what it does in `data-action`. */
function onConversationClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  switch (button.dataset.action) {
    case "copy-code": {
      const code = button.closest(".code-block")?.querySelector("pre > code");
      copyText(code?.textContent ?? "", button).then((ok) => ok && announcer.say("Code copied."));
      break;
    }
    case "copy-reply": {
      const reply = view.viewOf(button);
      copyText(reply?.text ?? "", button).then((ok) => ok && announcer.say("Reply copied."));
      break;
    }
    case "regenerate":
      session.regenerate();
      break;
    case "continue":
      session.continueReply();
      break;
    case "edit":
      session.editLast();
      break;
    case "take-back":
      session.takeBack();
      break;
    default:
      break;
  }
}

/** The conversation on screen as a file: what was asked and answered, in order. */
function exportConversation(format) {
  const turns = [];
  for (const item of byId("messages").children) {
    if (item.hidden || item.classList.contains("queued")) continue;
    const shown = view.viewOf(item);
    if (shown instanceof PromptView) turns.push({ role: "user", content: shown.text });
    else if (shown instanceof ReplyView && shown.hasText) {
      turns.push({ role: "assistant", content: shown.text });
    }
  }
  const firstPrompt = turns.find((turn) => turn.role === "user")?.content;
  const title = state.conversation ? chats.titleOf(state.conversation) : titleOf(firstPrompt);
  const transcript = { conversation: state.conversation, title, model: modelName, turns };
  if (format === "json") {
    download(fileName(title, "json"), toJson(transcript), "application/json");
  } else {
    download(fileName(title, "md"), toMarkdown(transcript), "text/markdown");
  }
}

function showModel(name) {
  modelName = name;
  if (!name) return;
  byId("model-name").textContent = name;
  byId("model").hidden = false;
}

async function start() {
  byId("new-chat").addEventListener("click", () => session.newChat());
  byId("export-markdown").addEventListener("click", () => exportConversation("markdown"));
  byId("export-json").addEventListener("click", () => exportConversation("json"));
  // A reload comes back to this tab's conversation (attached once the connection is open).
  session.resume(memory.savedConversation());
  byId("reconnect").addEventListener("click", () => connection?.reconnectNow());
  byId("messages").addEventListener("click", onConversationClick);
  if (!composer.touch) composer.focus(); // a phone's keyboard opens only when asked
  byId("empty-hint").textContent = composer.touch
    ? "The answer streams in as the model writes it. Tap Send to send; Enter starts a new line."
    : "The answer streams in as the model writes it. Press Enter to send, Shift+Enter for a new line.";
  let config;
  try {
    config = await loadPageConfig(window.location);
  } catch (error) {
    status.set("error", "No WebSocket address");
    session.failed("The page does not know where to connect.", String(error.message ?? error));
    return;
  }
  composer.setLimit(config.limits.maxPromptChars);
  settings.setCaps(config.limits);
  showModel(config.model);
  connection = new Connection(config.url, {
    onConnecting: (attempt) => session.connecting(attempt),
    onOpen: (reconnected) => session.opened(reconnected),
    onClose: (retryInMs, nextAttempt) => session.closed(retryInMs, nextAttempt),
    onMessage: (message) => session.receive(message),
    onUnreadable: () => session.failed("The server sent something the page could not read.", ""),
  });
  session.connect(connection);
  connection.connect();
}

start();
