// The chat page: wires the composer, the conversation and the status line to one
// WebSocket, and handles every server message in ONE switch on its `type`.

import { resolveWebSocketUrl } from "./config.js";
import { Connection } from "./connection.js";
import { friendlyError, REFUSED_CHAT_CODES } from "./errors.js";
import { ConversationView } from "./render.js";
import { StatusLine } from "./status.js";

// API Gateway closes the connection on a frame over 128 KB; refuse such a prompt here
// instead, so the connection and the text survive.
const MAX_FRAME_BYTES = 127 * 1024;
// If a stopped or reset reply never confirms its end, stop waiting for it after this.
const SETTLE_TIMEOUT_MS = 5000;
// The server frees the connection just after a reply's `done`, and a reply that outlived
// the wait above may hold it a while longer, so a chat sent then can be refused as `busy`
// (docs/protocol.md). Such a refusal is retried, backing off, for this long at most; a
// `busy` with no reply ended that recently is shown at once.
const BUSY_RETRY_MS = 15000;
const BUSY_RETRY_FIRST_MS = 200;
const BUSY_RETRY_MAX_MS = 3000;
const QUEUED_BEHIND_REPLY = "Waiting for the previous reply to end. It will be sent then.";
const GATEWAY_ERROR = "The server could not handle that request. Try again in a moment.";
const DRAFT_KEY = "llambda.draft";
const IDLE_HINT = "Enter to send · Shift+Enter for a new line";
const RUNNING_HINT = "A reply is running · Stop (or Esc) ends it";

const byId = (id) => document.getElementById(id);
const ui = {
  form: byId("composer"),
  prompt: byId("prompt"),
  send: byId("send"),
  stop: byId("stop"),
  newChat: byId("new-chat"),
  hint: byId("composer-hint"),
  reconnect: byId("reconnect"),
};
const view = new ConversationView({
  list: byId("messages"),
  empty: byId("empty"),
  scroller: byId("conversation"),
});
const status = new StatusLine({
  root: byId("status"),
  text: byId("status-text"),
  clock: byId("status-clock"),
});

let connection = null;
let outbox = null; // {prompt, promptView, retry}: typed and sent, waiting to go out
let pending = null; // {prompt, promptView, reply, started, stopTimer, retry}: not ended yet
let discarding = false; // after New chat: drop the old reply's tail until its `done`
let discardTimer = null;
let lastReplyEnd = -Infinity; // when a reply on this connection last ended or was left
let retryTimer = null; // a prompt refused as `busy` waits in the outbox for its next try
let droppedNoticeShown = false;

function handleMessage(message) {
  switch (message.type) {
    case "status":
      if (discarding || !pending) break;
      pending.started = true;
      if (message.state === "loading") {
        status.set("loading", "Model loading (cold start)…", { since: performance.now() });
      } else if (message.state === "generating") {
        status.set("generating", "Generating…", { since: performance.now() });
      }
      break;
    case "delta":
      if (discarding || !pending) break;
      if (!pending.started) {
        pending.started = true;
        status.set("generating", "Generating…", { since: performance.now() });
      }
      pending.reply.append(message.text);
      break;
    case "done": {
      if (discarding) {
        endDiscard();
        break;
      }
      if (!pending || !pending.started) {
        // Every reply says `status` before it ends, so this is an older one's end (a reply
        // that outlived the wait after Stop or New chat), not the end of the one sent now.
        lastReplyEnd = performance.now();
        break;
      }
      const summary = describeTiming(message);
      pending.reply.finish(String(message.reason ?? "end"), summary);
      lastReplyEnd = performance.now();
      endPending();
      status.set("done", summary ? `Ready · ${summary}` : "Ready");
      break;
    }
    case "error": {
      const code = String(message.code ?? "unknown");
      if (code === "busy" && retryWhenFree()) break;
      const refusal = REFUSED_CHAT_CODES.has(code);
      reportError(friendlyError(code), message.message, { refusal, endsReply: !refusal });
      break;
    }
    case "pong":
    case "reset": // New chat already cleared the view; the old reply's tail is dropped
      break;
    default:
      if (message.type === undefined && typeof message.message === "string") {
        // API Gateway's own answer when a route fails or the stage throttles.
        reportError(GATEWAY_ERROR, message.message, { refusal: true, endsReply: false });
      } else {
        // A newer server may say more; an older page ignores what it does not know.
        console.debug("llambda: ignoring a message of type", message.type);
      }
  }
}

/**
 * Show a problem in the conversation. A refusal that arrives before the reply began, or an
 * error that ends the reply (engine_error), settles the reply; a prompt that got no answer
 * goes back in the box.
 */
function reportError(title, detail, { refusal, endsReply }) {
  if (discarding) {
    // The view was cleared: whatever failed belonged to the conversation left behind.
    endDiscard();
    return;
  }
  const refused = refusal && pending && !pending.started;
  if (pending && endsReply) lastReplyEnd = performance.now();
  if (pending && (refused || endsReply)) {
    const { prompt, promptView, reply } = pending;
    if (!reply.hasText) {
      // Nothing came back for it: give the prompt back so it can be sent again.
      const note = refused ? "Not sent." : "Not answered.";
      promptView.setNote(`${note} Your message is back in the box.`, "unsent");
      restorePrompt(prompt);
    }
    reply.fail("Ended early: the model reported an error.");
    endPending();
  }
  view.addError(title, typeof detail === "string" ? detail : "");
  if (!pending) status.set("refused", "Connected · the last request did not go through");
}

function submitPrompt() {
  const text = ui.prompt.value;
  if (text.trim() === "") {
    ui.prompt.focus();
    return;
  }
  if (outbox || pending) {
    ui.hint.textContent = RUNNING_HINT;
    return;
  }
  const frame = JSON.stringify({ action: "chat", prompt: text });
  if (new Blob([frame]).size > MAX_FRAME_BYTES) {
    view.addError(
      "That message is too long to send (the limit is 128 KB). Shorten it and send it again.",
      "",
    );
    return;
  }
  ui.prompt.value = "";
  saveDraft();
  autosize();
  outbox = { prompt: text, promptView: view.addPrompt(text), retry: null };
  view.scrollToEnd();
  flushOutbox();
  updateControls();
}

/** Send the waiting prompt if the connection is open and no reply holds it. */
function flushOutbox() {
  if (!outbox || pending) return;
  if (!connection?.isOpen) {
    outbox.promptView.setNote("Waiting for the connection. It will be sent when it is back.", "queued");
    return;
  }
  if (discarding || retryTimer !== null) {
    // The reply left by New chat, or one refused as busy, still holds the connection.
    outbox.promptView.setNote(QUEUED_BEHIND_REPLY, "queued");
    status.set("waiting", "Waiting for the previous reply to end…");
    return;
  }
  const { prompt, promptView } = outbox;
  // Just after a reply ended, `busy` means it has not let go yet: worth trying again.
  const now = performance.now();
  const recent = now - lastReplyEnd < BUSY_RETRY_MS;
  const retry = outbox.retry ?? (recent ? { attempts: 0, until: now + BUSY_RETRY_MS } : null);
  outbox = null;
  promptView.setNote(null);
  connection.send({ action: "chat", prompt });
  const reply = view.startReply();
  pending = { prompt, promptView, reply, started: false, stopTimer: null, retry };
  status.set("waiting", "Sent · waiting for the model…", { since: performance.now() });
  updateControls();
}

/**
 * A `busy` refusal of a chat sent just after a reply ended or was left behind: that reply
 * still holds the connection. Queue the prompt again and try later; false when the refusal
 * is not such a one, or the time for retries is up (then it is shown as usual).
 */
function retryWhenFree() {
  if (!pending || pending.started || !pending.retry) return false;
  const { prompt, promptView, reply, retry } = pending;
  const now = performance.now();
  if (now >= retry.until) return false;
  reply.fail(""); // nothing came back: its empty bubble goes
  clearTimeout(pending.stopTimer);
  pending = null;
  outbox = { prompt, promptView, retry: { attempts: retry.attempts + 1, until: retry.until } };
  const backoff = BUSY_RETRY_FIRST_MS * 2 ** retry.attempts;
  retryTimer = setTimeout(
    () => {
      retryTimer = null;
      flushOutbox();
    },
    Math.min(backoff, BUSY_RETRY_MAX_MS, retry.until - now),
  );
  flushOutbox(); // shows it as queued
  updateControls();
  return true;
}

function cancelRetry() {
  clearTimeout(retryTimer);
  retryTimer = null;
}

function stopReply() {
  if (outbox && !pending) {
    // Not sent yet: take it back into the box.
    cancelRetry();
    restorePrompt(outbox.prompt);
    outbox.promptView.remove();
    outbox = null;
    status.set(connection?.isOpen ? "connected" : "reconnecting", "Not sent");
    updateControls();
    ui.prompt.focus();
    return;
  }
  if (!pending || pending.stopTimer) return;
  connection.send({ action: "stop" });
  status.set("stopping", "Stopping…");
  const stopping = pending;
  stopping.stopTimer = setTimeout(() => {
    if (pending !== stopping) return;
    stopping.reply.finish("stopped", "");
    lastReplyEnd = performance.now();
    endPending();
    status.set("connected", "Stopped");
  }, SETTLE_TIMEOUT_MS);
}

function newChat() {
  if (pending) {
    discarding = true;
    clearTimeout(discardTimer);
    discardTimer = setTimeout(endDiscard, SETTLE_TIMEOUT_MS);
    clearTimeout(pending.stopTimer);
    pending = null;
  }
  cancelRetry();
  if (outbox) {
    restorePrompt(outbox.prompt);
    outbox = null;
  }
  if (connection?.isOpen) {
    connection.send({ action: "reset" });
    status.set("connected", "New chat · connected");
  }
  view.clear();
  updateControls();
  ui.prompt.focus();
}

function endPending() {
  if (pending) clearTimeout(pending.stopTimer);
  pending = null;
  updateControls();
  flushOutbox();
}

/** The reply left by New chat ended (or we stop waiting): a queued prompt may go. */
function endDiscard() {
  clearTimeout(discardTimer);
  discardTimer = null;
  discarding = false;
  lastReplyEnd = performance.now();
  flushOutbox();
}

/** A connection closed or opened: no reply of an earlier one holds it or sends to it. */
function forgetOldReplies() {
  clearTimeout(discardTimer);
  discardTimer = null;
  discarding = false;
  cancelRetry();
  lastReplyEnd = -Infinity;
  if (outbox) outbox.retry = null;
}

function onOpen(reconnected) {
  ui.reconnect.hidden = true;
  droppedNoticeShown = false;
  forgetOldReplies();
  if (reconnected) {
    status.set("connected", "Reconnected");
    if (!view.isEmpty) {
      view.addNotice(
        "Reconnected. This is a new connection, so the model does not remember the messages above.",
      );
    }
  } else {
    status.set("connected", "Connected");
  }
  flushOutbox();
  updateControls();
}

function onClose(retryInMs, nextAttempt) {
  if (pending) {
    const { prompt, promptView, reply } = pending;
    clearTimeout(pending.stopTimer);
    pending = null;
    if (reply.hasText) {
      reply.fail("Interrupted: the connection dropped before the reply finished.");
    } else {
      // Nothing came back yet: send it again on the next connection.
      reply.fail("");
      outbox = { prompt, promptView, retry: null };
    }
  }
  forgetOldReplies();
  const everOpened = connection.everOpened;
  if (everOpened && !droppedNoticeShown) {
    droppedNoticeShown = true;
    view.addNotice("The connection dropped. Reconnecting…");
  }
  const words = everOpened ? "Connection lost · reconnecting" : "Cannot reach the server · retrying";
  status.set("reconnecting", `${words} (attempt ${nextAttempt})`, {
    until: performance.now() + retryInMs,
  });
  ui.reconnect.hidden = false;
  flushOutbox();
  updateControls();
}

function onConnecting(attempt) {
  status.set("connecting", attempt > 1 ? `Connecting (attempt ${attempt})…` : "Connecting…");
}

function describeTiming(done) {
  const timing = done.timing ?? {};
  const usage = done.usage ?? {};
  const parts = [];
  if (Number.isFinite(timing.init_ms) && timing.init_ms > 0) {
    parts.push(`model load ${(timing.init_ms / 1000).toFixed(1)} s`);
  }
  if (Number.isFinite(timing.ttft_ms)) {
    parts.push(`time to first token ${Math.round(timing.ttft_ms)} ms`);
  }
  if (Number.isFinite(timing.tokens_per_s)) {
    parts.push(`${timing.tokens_per_s.toFixed(1)} tokens/s`);
  }
  if (Number.isInteger(usage.completion_tokens)) {
    parts.push(`${usage.completion_tokens} tokens`);
  }
  return parts.join(" · ");
}

/** Put a prompt back in the box without losing anything already typed there. */
function restorePrompt(text) {
  const current = ui.prompt.value;
  if (current.trim() === "") ui.prompt.value = text;
  else if (!current.includes(text)) ui.prompt.value = `${text}\n\n${current}`;
  saveDraft();
  autosize();
}

function updateControls() {
  const running = Boolean(outbox || pending);
  const focusWasOnHidden = document.activeElement === (running ? ui.send : ui.stop);
  ui.send.hidden = running;
  ui.stop.hidden = !running;
  ui.hint.textContent = running ? RUNNING_HINT : IDLE_HINT;
  ui.form.dataset.running = String(running);
  // Focus goes to the box, never onto the other button, where a second Enter would act.
  if (focusWasOnHidden) ui.prompt.focus();
}

function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = `${ui.prompt.scrollHeight}px`;
}

function saveDraft() {
  try {
    sessionStorage.setItem(DRAFT_KEY, ui.prompt.value);
  } catch {
    // Storage can be unavailable (private mode); the box itself still holds the text.
  }
}

function restoreDraft() {
  try {
    const draft = sessionStorage.getItem(DRAFT_KEY);
    if (draft) ui.prompt.value = draft;
  } catch {
    // See saveDraft.
  }
}

function wireControls() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitPrompt();
  });
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitPrompt();
    } else if (event.key === "Escape" && (pending || outbox)) {
      event.preventDefault();
      stopReply();
    }
  });
  ui.prompt.addEventListener("input", () => {
    autosize();
    saveDraft();
  });
  ui.stop.addEventListener("click", stopReply);
  ui.newChat.addEventListener("click", newChat);
  ui.reconnect.addEventListener("click", () => connection?.reconnectNow());
}

async function start() {
  wireControls();
  restoreDraft();
  autosize();
  updateControls();
  let target;
  try {
    target = await resolveWebSocketUrl(window.location);
  } catch (error) {
    status.set("error", "No WebSocket address");
    view.addError("The page does not know where to connect.", String(error.message ?? error));
    return;
  }
  connection = new Connection(target.url, {
    onConnecting,
    onOpen,
    onClose,
    onMessage: handleMessage,
    onUnreadable: () => view.addError("The server sent something the page could not read.", ""),
  });
  connection.connect();
}

start();
