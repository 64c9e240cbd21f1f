// The chat page: wires the composer, the conversation and the status line to one
// WebSocket, and handles every server message in ONE switch on its `type`. What is in
// flight lives in one ChatState (chat_state.js), whose phases name the page's states.

import { Announcer } from "./announcer.js";
import { ChatState, Phase, Turn, TurnKind } from "./chat_state.js";
import { copyText } from "./clipboard.js";
import { Composer } from "./composer.js";
import { loadPageConfig } from "./config.js";
import { Connection } from "./connection.js";
import { ConversationView } from "./conversation_view.js";
import { friendlyError, REFUSED_CHAT_CODES } from "./errors.js";
import { Settings } from "./settings.js";
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
// Continue is an ordinary chat turn: the server still holds the cut-off reply, so the model
// is asked to go on from it (docs/protocol.md, "What the page's buttons send").
export const CONTINUE_PROMPT = "Continue exactly where your last reply stopped.";

const WORDS = {
  queuedBehindReply: "Waiting for the previous reply to end. It will be sent then.",
  queuedForConnection: "Waiting for the connection. It will be sent when it is back.",
  gatewayError: "The server could not handle that request. Try again in a moment.",
  dropped: "The connection dropped. Reconnecting…",
  reconnected:
    "Reconnected. This is a new connection, so the model does not remember the messages above.",
  regeneratedFresh:
    "Regenerated in a fresh context: the model no longer remembers the messages above.",
  editedFresh: "Sent again in a fresh context: the model no longer remembers the messages above.",
  backInTheBox: "Your message is back in the box.",
  tooLongFrame:
    "That message is too long to send (the limit is 128 KB). Shorten it and send it again.",
};

const byId = (id) => document.getElementById(id);
const state = new ChatState();
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
  { onSubmit: submitPrompt, onStop: stopReply, onCancelEdit: cancelEdit },
);
const settings = new Settings({
  panel: byId("settings"),
  maxTokens: byId("max-tokens"),
  temperature: byId("temperature"),
  reset: byId("settings-reset"),
  note: byId("settings-note"),
});
let connection = null;

function handleMessage(message) {
  const turn = state.turn;
  switch (message.type) {
    case "status":
      if (state.draining || !turn?.sent) break;
      markStarted(turn);
      if (message.state === "loading") {
        status.set("loading", "Model loading (cold start)…", { since: performance.now() });
      } else if (message.state === "generating") {
        status.set("generating", "Generating…", { since: performance.now() });
      }
      break;
    case "delta":
      if (state.draining || !turn?.sent) break;
      if (!turn.started) {
        markStarted(turn);
        status.set("generating", "Generating…", { since: performance.now() });
      }
      turn.reply.append(message.text);
      break;
    case "done":
      if (state.draining) {
        endDrain();
      } else if (!turn?.sent || !turn.started) {
        // Every reply says `status` before it ends, so this is an older one's end (a reply
        // that outlived the wait after Stop or New chat), not the end of the one sent now.
        state.lastReplyEnd = performance.now();
      } else {
        finishTurn(message);
      }
      break;
    case "error": {
      const code = String(message.code ?? "unknown");
      if (code === "busy" && retryWhenFree()) break;
      const refusal = REFUSED_CHAT_CODES.has(code);
      reportError(friendlyError(code), message.message, { refusal, endsReply: !refusal });
      break;
    }
    case "pong": // any frame tells the connection it is alive; nothing else to do
      break;
    case "reset":
      resetAnswered();
      break;
    default:
      if (message.type === undefined && typeof message.message === "string") {
        // API Gateway's own answer when a route fails or the stage throttles.
        reportError(WORDS.gatewayError, message.message, { refusal: true, endsReply: false });
      } else {
        // A newer server may say more; an older page ignores what it does not know.
        console.debug("llambda: ignoring a message of type", message.type);
      }
  }
}

/** The first sign of the reply: what it replaces goes now. */
function markStarted(turn) {
  if (turn.started) return;
  turn.started = true;
  turn.replaces?.reply?.remove();
  turn.replaces?.promptView?.remove();
  turn.replaces = null;
}

function finishTurn(done) {
  const turn = state.turn;
  const reason = String(done.reason ?? "end");
  turn.reply.finish(reason, describeTiming(done));
  state.lastReplyEnd = performance.now();
  state.remembered += 1; // the server keeps every reply that ends with `done`
  const original = turn.kind === TurnKind.CONTINUE ? turn.resumes : null;
  endTurn();
  offerTurnActions({
    prompt: original ? original.prompt : turn.prompt,
    promptView: original ? original.promptView : turn.promptView,
    reply: turn.reply,
    reason,
    rememberedBefore: original ? original.rememberedBefore : turn.rememberedBefore,
  });
  const ending = { stopped: " (stopped)", length: " (cut off at the length limit)" }[reason] ?? "";
  announcer.say(
    turn.reply.hasText ? `Reply${ending}: ${turn.reply.spokenText()}` : "Stopped before any text.",
  );
  status.set("done", "Ready");
}

/**
 * Show a problem in the conversation. A refusal that arrives before the reply began, or an
 * error that ends the reply (engine_error), settles the reply; a prompt that got no answer
 * goes back in the box, and its bubble goes.
 */
function reportError(title, detail, { refusal, endsReply }) {
  if (state.draining) {
    // The view was cleared: whatever failed belonged to the conversation left behind.
    endDrain();
    return;
  }
  const turn = state.turn?.sent ? state.turn : null;
  const refused = refusal && turn && !turn.started;
  let note = "";
  if (turn && endsReply) state.lastReplyEnd = performance.now();
  if (turn && (refused || endsReply)) {
    if (!turn.reply.hasNewText) {
      // Nothing came back for it: take it back (its text into the box).
      if (giveBack(turn)) note = WORDS.backInTheBox;
    } else {
      turn.reply.fail("Ended early: the model reported an error.");
    }
    endTurn();
  }
  withdrawTurnActions();
  view.addError(title, typeof detail === "string" ? detail : "", note);
  if (!state.turn) status.set("refused", "Connected · the last request did not go through");
}

/**
 * A turn that will not be answered is undone: a typed prompt's bubble goes and its text
 * returns to the box (true then); what a Regenerate, Edit or Continue was to replace is
 * shown again as it was.
 */
function giveBack(turn) {
  if (turn.kind === TurnKind.CONTINUE) turn.resumes.reply.unresume();
  else turn.reply?.remove();
  turn.reply = null;
  turn.replaces?.reply?.setHidden(false);
  turn.replaces?.promptView?.setHidden(false);
  if (!turn.typed) return false;
  turn.promptView.remove();
  composer.restore(turn.prompt);
  return true;
}

function submitPrompt(text) {
  if (text.trim() === "") {
    composer.focus();
    return;
  }
  if (state.turn || composer.overLimit) return;
  const options = settings.options();
  const frame = JSON.stringify({ action: "chat", prompt: text, options });
  if (new Blob([frame]).size > MAX_FRAME_BYTES) {
    view.addError(WORDS.tooLongFrame, "");
    return;
  }
  const editing = state.editing;
  const exchange = editing ?? state.lastTurn;
  withdrawTurnActions();
  composer.endEdit({ keepText: true });
  composer.clear();
  let turn;
  if (editing) {
    // Edit: the last exchange is replaced. The server can only forget a whole conversation,
    // so it forgets it (reset) and gets the edited prompt (docs/protocol.md).
    editing.promptView.setEditing(false);
    editing.promptView.setHidden(true);
    editing.reply.setHidden(true);
    state.editing = null;
    turn = new Turn({
      kind: TurnKind.EDIT,
      prompt: text,
      options,
      promptView: view.addPrompt(text),
      replaces: { promptView: editing.promptView, reply: editing.reply },
      needsReset: state.remembered > 0,
      freshContext: exchange.rememberedBefore > 0,
    });
  } else {
    turn = new Turn({ kind: TurnKind.NEW, prompt: text, options, promptView: view.addPrompt(text) });
  }
  state.turn = turn;
  flush();
  updateControls();
}

/** Regenerate: the last prompt again, in place of the last reply. */
function regenerate() {
  const last = state.lastTurn;
  if (!last || state.turn) return;
  cancelEdit();
  withdrawTurnActions();
  last.reply.setHidden(true);
  state.turn = new Turn({
    kind: TurnKind.REGENERATE,
    prompt: last.prompt,
    options: settings.options(),
    promptView: last.promptView,
    replaces: { reply: last.reply },
    needsReset: state.remembered > 0,
    freshContext: last.rememberedBefore > 0,
  });
  flush();
  updateControls();
}

/** Continue: more of the last reply, which stopped at the length limit. */
function continueReply() {
  const last = state.lastTurn;
  if (!last || state.turn || last.reason !== "length" || state.remembered === 0) return;
  cancelEdit();
  withdrawTurnActions();
  state.turn = new Turn({
    kind: TurnKind.CONTINUE,
    prompt: CONTINUE_PROMPT,
    options: settings.options(),
    resumes: last,
  });
  flush();
  updateControls();
}

function editLastPrompt() {
  const last = state.lastTurn;
  if (!last || state.turn) return;
  state.editing = last;
  last.promptView.setEditing(true);
  composer.startEdit(last.prompt);
}

function cancelEdit() {
  if (!state.editing) return;
  state.editing.promptView.setEditing(false);
  state.editing = null;
  composer.endEdit({ keepText: false });
}

/** Send the waiting turn if the connection is open and nothing on it holds the way. */
function flush() {
  const turn = state.turn;
  if (!turn || turn.sent) return;
  if (!connection?.isOpen) {
    turn.promptView?.setNote(turn.typed ? WORDS.queuedForConnection : null, "queued");
    return;
  }
  if (state.draining || state.busyRetry !== null) {
    // The reply left by New chat, or one refused as busy, still holds the connection.
    if (turn.typed) turn.promptView.setNote(WORDS.queuedBehindReply, "queued");
    status.set("waiting", "Waiting for the previous reply to end…");
    return;
  }
  if (state.awaitingReset) return; // its answer comes within moments, then this goes
  if (turn.needsReset) {
    turn.needsReset = false;
    if (turn.freshContext) {
      // Above the prompt the model now answers without what came before it.
      const words = turn.kind === TurnKind.REGENERATE ? WORDS.regeneratedFresh : WORDS.editedFresh;
      view.addNotice(words, turn.promptView.item);
    }
    sendReset();
    return;
  }
  // Just after a reply ended, `busy` means it has not let go yet: worth trying again.
  const now = performance.now();
  const recent = now - state.lastReplyEnd < BUSY_RETRY_MS;
  turn.retry ??= recent ? { attempts: 0, until: now + BUSY_RETRY_MS } : null;
  if (turn.typed) {
    turn.promptView.setNote(null);
    view.moveToEnd(turn.promptView.item); // below any notice that came while it waited
  }
  const frame = { action: "chat", prompt: turn.prompt };
  if (Object.keys(turn.options).length) frame.options = turn.options;
  connection.send(frame);
  turn.sent = true;
  if (turn.kind !== TurnKind.CONTINUE) turn.rememberedBefore = state.remembered;
  if (turn.kind === TurnKind.CONTINUE) {
    turn.reply = turn.resumes.reply;
    turn.reply.resume();
  } else {
    turn.reply = view.startReply();
  }
  connection.expectReply(true);
  status.set("waiting", "Sent · waiting for the model…", { since: performance.now() });
  updateControls();
}

function sendReset() {
  connection.send({ action: "reset" });
  state.remembered = 0;
  clearTimeout(state.awaitingReset);
  state.awaitingReset = setTimeout(resetAnswered, SETTLE_TIMEOUT_MS);
}

/** `reset` was answered (or the wait for it ran out): a waiting turn may go. */
function resetAnswered() {
  if (state.awaitingReset === null) return;
  clearTimeout(state.awaitingReset);
  state.awaitingReset = null;
  flush();
}

/**
 * A `busy` refusal of a chat sent just after a reply ended or was left behind: that reply
 * still holds the connection. Queue the turn again and try later; false when the refusal
 * is not such a one, or the time for retries is up (then it is shown as usual).
 */
function retryWhenFree() {
  const turn = state.turn;
  if (!turn?.sent || turn.started || !turn.retry) return false;
  const now = performance.now();
  if (now >= turn.retry.until) return false;
  if (turn.kind === TurnKind.CONTINUE) turn.reply.unresume();
  else turn.reply.remove(); // nothing came back: its empty bubble goes
  turn.reply = null;
  turn.sent = false;
  clearTimeout(turn.stopTimer);
  connection.expectReply(false);
  const backoff = BUSY_RETRY_FIRST_MS * 2 ** turn.retry.attempts;
  turn.retry = { attempts: turn.retry.attempts + 1, until: turn.retry.until };
  state.busyRetry = setTimeout(
    () => {
      state.busyRetry = null;
      flush();
    },
    Math.min(backoff, BUSY_RETRY_MAX_MS, turn.retry.until - now),
  );
  flush(); // shows it as queued
  updateControls();
  return true;
}

function cancelRetry() {
  clearTimeout(state.busyRetry);
  state.busyRetry = null;
}

/** Stop (a reply is running) or Cancel (the prompt has not gone yet). */
function stopReply() {
  const turn = state.turn;
  if (!turn) return;
  if (!turn.sent) {
    cancelRetry();
    giveBack(turn);
    state.turn = null;
    status.set(connection?.isOpen ? "connected" : "reconnecting", "Not sent");
    updateControls();
    composer.focus();
    return;
  }
  if (turn.stopping) return;
  turn.stopping = true;
  connection.send({ action: "stop" });
  status.set("stopping", "Stopping…");
  updateControls();
  turn.stopTimer = setTimeout(() => {
    if (state.turn !== turn) return;
    turn.reply.finish("stopped", "");
    state.lastReplyEnd = performance.now();
    endTurn();
    status.set("connected", "Stopped");
  }, SETTLE_TIMEOUT_MS);
}

function newChat() {
  const turn = state.turn;
  if (turn?.sent) startDrain();
  if (turn && !turn.sent && turn.typed) composer.restore(turn.prompt);
  if (turn) clearTimeout(turn.stopTimer);
  state.turn = null;
  cancelRetry();
  cancelEdit();
  withdrawTurnActions();
  connection?.expectReply(false);
  if (connection?.isOpen) {
    sendReset();
    status.set("connected", "New chat · connected");
  }
  view.clear();
  updateControls();
  composer.focus();
}

function endTurn() {
  const turn = state.turn;
  if (turn) clearTimeout(turn.stopTimer);
  state.turn = null;
  connection?.expectReply(false);
  updateControls();
}

/** After New chat during a reply: drop the old reply's tail until its `done`. */
function startDrain() {
  clearTimeout(state.draining);
  state.draining = setTimeout(endDrain, SETTLE_TIMEOUT_MS);
}

/** The reply left by New chat ended (or we stop waiting): a queued prompt may go. */
function endDrain() {
  clearTimeout(state.draining);
  state.draining = null;
  state.lastReplyEnd = performance.now();
  flush();
}

/** A connection closed or opened: nothing of an earlier one holds it or sends to it. */
function forgetServerState() {
  clearTimeout(state.draining);
  state.draining = null;
  clearTimeout(state.awaitingReset);
  state.awaitingReset = null;
  cancelRetry();
  state.lastReplyEnd = -Infinity;
  state.remembered = 0;
  if (state.turn) {
    state.turn.retry = null;
    state.turn.needsReset = false; // a new connection remembers nothing anyway
  }
}

/** Regenerate, Edit and Continue belong to the last exchange, offered while nothing runs. */
function offerTurnActions(exchange) {
  withdrawTurnActions();
  state.lastTurn = exchange;
  exchange.reply.setActions({
    regenerate: true,
    continue: exchange.reason === "length" && state.remembered > 0,
  });
  exchange.promptView?.setEditable(true);
}

/** Something came after the last exchange (or a new one began): it is no longer the last. */
function withdrawTurnActions() {
  const last = state.lastTurn;
  if (!last) return;
  if (last.reply.item.isConnected) last.reply.setActions({});
  last.promptView?.setEditable(false);
  state.lastTurn = null;
}

function onOpen(reconnected) {
  byId("reconnect").hidden = true;
  state.dropNoticeShown = false;
  forgetServerState();
  if (reconnected) {
    status.set("connected", "Reconnected");
    // Event order: this notice, then whatever waited for the connection (moved below it).
    if (!view.isEmpty) view.addNotice(WORDS.reconnected);
  } else {
    status.set("connected", "Connected");
  }
  flush();
  updateControls();
}

function onClose(retryInMs, nextAttempt) {
  const turn = state.turn;
  if (turn?.sent) {
    clearTimeout(turn.stopTimer);
    const resend = turn.kind !== TurnKind.CONTINUE && !turn.stopping && !turn.reply.hasNewText;
    if (resend) {
      // Nothing came back yet: send it again on the next connection.
      turn.reply.remove();
      Object.assign(turn, { reply: null, sent: false, started: false, retry: null });
    } else if (turn.reply.hasNewText) {
      turn.reply.fail("Interrupted: the connection dropped before the reply finished.");
      state.turn = null;
    } else {
      giveBack(turn);
      state.turn = null;
    }
  } else if (turn?.kind === TurnKind.CONTINUE) {
    // A new connection has forgotten the reply a Continue would add to.
    giveBack(turn);
    state.turn = null;
  }
  connection.expectReply(false);
  forgetServerState();
  if (state.editing) cancelEdit();
  withdrawTurnActions();
  if (connection.everOpened && !state.dropNoticeShown) {
    state.dropNoticeShown = true;
    view.addNotice(WORDS.dropped);
  }
  const words = connection.everOpened
    ? "Connection lost · reconnecting"
    : "Cannot reach the server · retrying";
  status.set("reconnecting", words, {
    until: performance.now() + retryInMs,
    detail: `attempt ${nextAttempt}`,
  });
  byId("reconnect").hidden = false;
  flush();
  updateControls();
}

function onConnecting(attempt) {
  if (attempt === 1 && !connection.everOpened) {
    status.set("connecting", "Connecting…");
    return;
  }
  // Retrying: the words stay as they were (a screen reader hears them once); the attempt
  // number sits beside them, unannounced.
  const words = connection.everOpened
    ? "Connection lost · reconnecting"
    : "Cannot reach the server · retrying";
  status.set("reconnecting", words, { detail: `attempt ${attempt} · connecting…` });
}

function describeTiming(done) {
  const timing = done.timing ?? {};
  const usage = done.usage ?? {};
  const tokens = usage.completion_tokens;
  const parts = [];
  if (Number.isFinite(timing.init_ms) && timing.init_ms > 0) {
    parts.push(`model load ${(timing.init_ms / 1000).toFixed(1)} s`);
  }
  if (tokens === 0) return parts.join(" · "); // no text: no speed to speak of
  if (Number.isFinite(timing.ttft_ms)) {
    parts.push(`time to first token ${Math.round(timing.ttft_ms)} ms`);
  }
  if (Number.isFinite(timing.tokens_per_s) && timing.tokens_per_s > 0) {
    parts.push(`${timing.tokens_per_s.toFixed(1)} tokens/s`);
  }
  if (Number.isInteger(tokens)) parts.push(`${tokens} tokens`);
  return parts.join(" · ");
}

function updateControls() {
  composer.setPhase(state.phase);
  // The last exchange's Regenerate, Edit and Continue wait while a turn is in flight.
  byId("messages").dataset.phase = state.phase;
}

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
      if (state.phase === Phase.IDLE) regenerate();
      break;
    case "continue":
      if (state.phase === Phase.IDLE) continueReply();
      break;
    case "edit":
      if (state.phase === Phase.IDLE) editLastPrompt();
      break;
    default:
      break;
  }
}

function showModel(name) {
  if (!name) return;
  byId("model-name").textContent = name;
  byId("model").hidden = false;
}

async function start() {
  byId("new-chat").addEventListener("click", newChat);
  byId("reconnect").addEventListener("click", () => connection?.reconnectNow());
  byId("messages").addEventListener("click", onConversationClick);
  if (!composer.touch) composer.focus(); // a phone's keyboard opens only when asked
  byId("empty-hint").textContent = composer.touch
    ? "The answer streams in as the model writes it. Tap Send to send; Enter starts a new line."
    : "The answer streams in as the model writes it. Press Enter to send, Shift+Enter for a new line.";
  updateControls();
  let config;
  try {
    config = await loadPageConfig(window.location);
  } catch (error) {
    status.set("error", "No WebSocket address");
    view.addError("The page does not know where to connect.", String(error.message ?? error));
    return;
  }
  composer.setLimit(config.limits.maxPromptChars);
  settings.setCaps(config.limits);
  showModel(config.model);
  connection = new Connection(config.url, {
    onConnecting,
    onOpen,
    onClose,
    onMessage: handleMessage,
    onUnreadable: () => view.addError("The server sent something the page could not read.", ""),
  });
  connection.connect();
}

start();
