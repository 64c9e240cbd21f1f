// The conversation's state and what changes it, without the DOM: the session core. Every
// server message goes through ONE switch on its `type` (receive); the person's actions
// (send, stop, regenerate, edit, continue, open, forget) and the connection's events come
// in as calls. What is in flight lives in one ChatState (chat_state.js), whose phases name
// the page's states. What the person sees is drawn through the ports it is given (app.js
// gives the page's views; node --test gives recording fakes, tests/web/node/), so this file
// touches no element and runs under node.
//
// A conversation lives on the server under the id it issued (docs/protocol.md). The page
// keeps that id for this tab (tab_memory.js) and attaches it again after every reconnect
// and reload, with the `seq` of the last delta it showed, so the model's memory and a
// running reply survive both; it says so only when something really was lost.

import { ChatState, Phase, Turn, TurnKind } from "./chat_state.js";
import { MAX_FRAME_BYTES } from "./contract.js";
import { friendlyError, REFUSED_CHAT_CODES } from "./errors.js";
import { PartJoiner } from "./message_parts.js";

// If a stopped or reset reply never confirms its end, stop waiting for it after this.
const SETTLE_TIMEOUT_MS = 5000;
// The server frees the conversation just after a reply's `done`, and a reply that outlived
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
  // Said in place of `dropped`: nothing was lost, the conversation was attached again.
  cameBack: "The connection dropped and came back. The conversation goes on.",
  replyWaits: "The connection dropped. The reply goes on when it is back…",
  cutOff:
    "Cut off: the connection was away longer than the server keeps a reply going, so this is as far as it got.",
  finishedAway: "Finished while the connection was away",
  lost:
    "This conversation is no longer on the server (it expired, or was forgotten), so the model does not remember the messages above. Your next message starts a new conversation.",
  detached: "This conversation was opened in another tab or window; its replies go there now.",
  heldElsewhere: "Not sent: this conversation is open in another tab. Take it back to send it here.",
  continuedElsewhere: "Goes on in the other tab.",
  regeneratedFresh:
    "Regenerated in a fresh context: the model no longer remembers the messages above.",
  editedFresh: "Sent again in a fresh context: the model no longer remembers the messages above.",
  backInTheBox: "Your message is back in the box.",
};

// API Gateway takes a WebSocket frame of at most MAX_FRAME_BYTES (32 KB) and closes the
// connection on a larger one; the page sends each message as one frame, so it refuses
// such a prompt itself, and the connection and the text survive.
const KB = 1024;
function tooLongFrame(bytes) {
  return `That message is too long to send: ${Math.ceil(bytes / KB)} KB, and the limit is ${MAX_FRAME_BYTES / KB} KB (its text as UTF-8 in the frame sent). Shorten it and send it again; it is still in the box.`;
}

/**
 * @typedef {object} Ports what the session draws with and talks through
 * @property {object} view the conversation: addPrompt, startReply (handles with the
 *   PromptView and ReplyView methods), addError, addNotice, addTakeBackNotice,
 *   removeTakeBackNotices, reinsert, moveToEnd, clear, showReconnect, setPhase, isEmpty
 * @property {object} status set(state, words, options)
 * @property {object} composer restore, focus, clear, startEdit, endEdit, setPhase, overLimit
 * @property {object} chats touch, setCurrent, remove, setExportable
 * @property {object} settings options()
 * @property {object} memory saveConversation, savedConversation, savedProgress, saveProgress
 * @property {object} announcer say(words)
 */

/**
 * A session: the state of the conversation shown and the reducer of server messages.
 * @param {Ports} ports
 */
export function createSession({ view, status, composer, chats, settings, memory, announcer }) {
  const state = new ChatState();
  const { saveConversation, savedProgress, saveProgress } = memory;
  let connection = null; // set once the page knows where to connect (connect)
  const parts = new PartJoiner(); // a message too large for one frame comes in parts
  const pendingForgets = new Set(); // `forget`s for the next open connection

  function handleMessage(message) {
    const turn = state.turn;
    // A reply's messages name their conversation: one this page left (New chat, or another
    // conversation opened) may still be streaming here, and is not shown.
    const elsewhere = message.conversation !== undefined && message.conversation !== state.conversation;
    switch (message.type) {
      case "conversation":
        conversationStarted(String(message.id ?? ""));
        break;
      case "status":
        if (elsewhere || !turn?.sent) break;
        markStarted(turn);
        if (message.state === "loading") {
          status.set("loading", "Model loading (cold start)…", { since: performance.now() });
        } else if (message.state === "generating") {
          status.set("generating", "Generating…", { since: performance.now() });
        }
        break;
      case "delta":
        if (elsewhere || !turn?.sent) break;
        // A resumed reply starts after the last delta shown: never the same text twice.
        if (Number.isInteger(message.seq) && message.seq <= turn.seq) break;
        if (!turn.started) {
          markStarted(turn);
          status.set("generating", "Generating…", { since: performance.now() });
        }
        turn.reply.append(message.text);
        if (Number.isInteger(message.seq)) turn.seq = message.seq;
        rememberProgress(turn);
        break;
      case "done":
        if (elsewhere) break;
        if (!turn?.sent || !turn.started) {
          // Every reply says `status` before it ends, so this is an older one's end (a reply
          // that outlived the wait after Stop or a reset), not the end of the one sent now.
          state.lastReplyEnd = performance.now();
        } else {
          finishTurn(message);
        }
        break;
      case "error": {
        if (elsewhere) break;
        const code = String(message.code ?? "unknown");
        if (code === "busy" && retryWhenFree()) break;
        if (code === "not_found" && conversationNotFound()) break;
        const refusal = REFUSED_CHAT_CODES.has(code);
        reportError(friendlyError(code), message.message, { refusal, endsReply: !refusal });
        if (code === "not_attached") detach();
        break;
      }
      case "attached":
        attached(message);
        break;
      case "detached":
        if (message.conversation === state.conversation) detach();
        break;
      case "forgotten": // the list forgot it when asked; nothing else to do
      case "history": // this page never asks: `attached` brings the turns
      case "pong": // any frame tells the connection it is alive; nothing else to do
        break;
      case "reset":
        resetAnswered();
        break;
      case "part": {
        const whole = parts.add(message);
        if (whole) handleMessage(whole);
        break;
      }
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

  /** A chat sent without a conversation started one: the server's id for it. */
  function conversationStarted(id) {
    const turn = state.turn;
    if (!id || !turn?.sent || state.conversation !== null) return;
    state.conversation = id;
    state.showing = id;
    state.attached = true;
    saveConversation(id);
    chats.touch(id, turn.prompt);
    chats.setCurrent(id);
  }

  /**
   * `attached`: the conversation is this connection's again. After a drop the page goes on
   * where it was (the running reply resumes after the last delta shown); anything else (a
   * reload, another conversation opened, one taken back) is drawn from the server's turns.
   */
  function attached(message) {
    const id = message.conversation;
    if (id !== state.attaching || id !== state.conversation) return;
    state.attaching = null;
    state.attached = true;
    state.detached = false;
    const turns = Array.isArray(message.turns)
      ? message.turns.filter((t) => typeof t?.content === "string")
      : [];
    const running = typeof message.reply?.prompt === "string" ? message.reply.prompt : null;
    const interrupted = message.interrupted === true;
    state.remembered = turns.filter((t) => t.role === "user").length;
    if (state.showing === id) goOn(turns, running, interrupted);
    else showConversation(id, turns, running, interrupted);
    if (!state.turn) status.set("connected", "Connected");
    flush();
    updateControls();
  }

  /** Back after a drop: the reply in flight goes on, ended while away, or is sent again. */
  function goOn(turns, running, interrupted) {
    const turn = state.turn;
    if (!turn?.sent) return;
    if (running !== null) {
      turn.reply.setWaiting(null); // its next deltas are on their way
      if (turn.stopping) connection.send({ action: "stop", conversation: state.conversation });
      connection.expectReply(true);
      status.set("generating", "Generating…", { since: performance.now() });
      return;
    }
    const answer = turns.at(-1);
    const answered =
      answer?.role === "assistant" &&
      turns.at(-2)?.content === turn.prompt &&
      state.remembered === turn.rememberedBefore + 1;
    if (!answered) {
      resend(turn); // it never reached the server: send it again
      return;
    }
    // It ended while the page was away: its whole text is in the turns.
    markStarted(turn);
    turn.reply.replaceNewText(answer.content);
    if (interrupted) {
      turn.reply.fail(WORDS.cutOff);
      view.addNotice(WORDS.cutOff);
      endTurn();
    } else {
      finishTurn({ reason: "end" }, WORDS.finishedAway);
    }
  }

  /** Draw a conversation from the server's turns; a running reply streams on below them. */
  function showConversation(id, turns, running, interrupted) {
    const queued = state.turn && !state.turn.sent && state.turn.typed ? state.turn : null;
    if (state.turn && !queued) clearTimeout(state.turn.stopTimer);
    state.turn = null;
    cancelEdit();
    withdrawTurnActions();
    view.clear();
    state.showing = id;
    chats.setCurrent(id);
    // A Continue's text is shown joined to the reply it continues, as it was streamed.
    const exchanges = [];
    let prompt = null;
    let before = 0;
    for (const { role, content } of turns) {
      if (role === "user") {
        prompt = content;
      } else if (prompt !== null) {
        if (prompt === CONTINUE_PROMPT && exchanges.length) exchanges.at(-1).text += content;
        else exchanges.push({ prompt, text: content, rememberedBefore: before });
        before += 1;
        prompt = null;
      }
    }
    let last = null;
    for (const exchange of exchanges) {
      const promptView = view.addPrompt(exchange.prompt);
      const reply = view.startReply();
      reply.append(exchange.text);
      reply.finish("end", "");
      last = { prompt: exchange.prompt, promptView, reply, reason: "end", rememberedBefore: exchange.rememberedBefore };
    }
    if (last && interrupted && running === null) last.reply.markCutOff(WORDS.cutOff);
    if (last) offerTurnActions(last);
    const progress = savedProgress();
    const shown = progress?.conversation === id && progress.prompt === running ? progress : null;
    if (!shown) saveProgress(null);
    if (running !== null) {
      if (queued) giveBack(queued); // one turn at a time: the running reply comes first
      followRunningReply(running, shown, state.remembered);
    } else if (queued) {
      state.turn = queued;
      view.reinsert(queued.promptView);
    }
  }

  /** The reply the server is writing now (after a reload): shown from the text kept so far. */
  function followRunningReply(prompt, shown, rememberedBefore) {
    const last = state.lastTurn;
    let turn;
    if (prompt === CONTINUE_PROMPT && last) {
      withdrawTurnActions();
      turn = new Turn({ kind: TurnKind.CONTINUE, prompt, resumes: last });
      turn.reply = last.reply;
      turn.reply.resume();
    } else {
      withdrawTurnActions();
      turn = new Turn({ kind: TurnKind.NEW, prompt, promptView: view.addPrompt(prompt) });
      turn.reply = view.startReply();
    }
    Object.assign(turn, { sent: true, rememberedBefore });
    state.turn = turn;
    if (shown) {
      markStarted(turn);
      turn.reply.append(shown.text);
      turn.seq = shown.seq;
    }
    connection.expectReply(true);
    status.set("generating", "Generating…", { since: performance.now() });
  }

  /** How far the running reply got, for a reload: `seq` and the text up to it. */
  function rememberProgress(turn) {
    if (!state.conversation) return;
    const text = turn.reply.text.slice(turn.reply.textBefore);
    saveProgress({ conversation: state.conversation, prompt: turn.prompt, seq: turn.seq, text });
  }

  /**
   * `not_found`: the conversation being attached, or the one a chat was sent in, is gone
   * (expired, or forgotten elsewhere). False when it answers a `forget` instead.
   */
  function conversationNotFound() {
    const turn = state.turn?.sent && !state.turn.started ? state.turn : null;
    if (state.attaching === null && !turn) return false;
    const id = state.attaching ?? state.conversation;
    state.attaching = null;
    if (turn) {
      giveBack(turn);
      endTurn();
    }
    chats.remove(id);
    if (id === state.conversation) {
      state.conversation = null;
      state.showing = null;
      state.attached = false;
      state.remembered = 0;
      saveConversation(null);
      saveProgress(null);
      withdrawTurnActions();
      chats.setCurrent(null);
      view.addNotice(WORDS.lost);
    }
    if (!state.turn) status.set("connected", "Connected");
    flush();
    updateControls();
    return true;
  }

  /** Another connection has the conversation now: say so, and offer to take it back. */
  function detach() {
    if (state.detached) return;
    state.attached = false;
    state.detached = true;
    const turn = state.turn;
    if (turn?.sent) {
      turn.reply.fail(WORDS.continuedElsewhere);
      endTurn();
    }
    saveProgress(null);
    view.addTakeBackNotice(WORDS.detached);
    status.set("detached", "Open in another tab");
    flush();
    updateControls();
  }

  /** Take it back: attach it here and draw it afresh (the other tab may have added to it). */
  function takeBack() {
    if (!state.conversation || !connection?.isOpen) return;
    view.removeTakeBackNotices();
    state.showing = null;
    sendAttach(state.conversation);
  }

  function sendAttach(id) {
    const frame = { action: "attach", conversation: id };
    // The last delta already on screen: after a drop, the turn's; after a reload, the
    // one this tab kept. The server sends the reply from the delta after it.
    const progress = savedProgress();
    const seq =
      state.showing === id
        ? (state.turn?.sent ? state.turn.seq : -1)
        : progress?.conversation === id
          ? progress.seq
          : -1;
    if (seq >= 0) frame.seq = seq;
    state.attaching = id;
    connection.send(frame);
    status.set("connecting", "Opening the conversation…");
  }

  /** The first sign of the reply: what it replaces goes now. */
  function markStarted(turn) {
    if (turn.started) return;
    turn.started = true;
    turn.replaces?.reply?.remove();
    turn.replaces?.promptView?.remove();
    turn.replaces = null;
    updateControls(); // the phase is STREAMING now, for the view too
  }

  function finishTurn(done, summary = describeTiming(done)) {
    const turn = state.turn;
    const reason = String(done.reason ?? "end");
    turn.reply.finish(reason, summary);
    state.lastReplyEnd = performance.now();
    state.remembered = turn.rememberedBefore + 1; // the server keeps every reply that ends with `done`
    if (state.conversation) chats.touch(state.conversation, turn.prompt);
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
    // The frame as flush() sends it, so the limit is checked on what really goes.
    const frame = { action: "chat", prompt: text, conversation: state.conversation ?? undefined, options };
    const bytes = new TextEncoder().encode(JSON.stringify(frame)).length;
    if (bytes > MAX_FRAME_BYTES) {
      view.addError(tooLongFrame(bytes), "");
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
    if (state.attaching !== null) return; // the conversation is being attached: this follows
    if (state.detached) {
      turn.promptView?.setNote(turn.typed ? WORDS.heldElsewhere : null, "queued");
      return;
    }
    if (state.busyRetry !== null) {
      // A reply refused as busy: the one before it still holds the conversation.
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
        view.addNotice(words, turn.promptView);
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
      view.moveToEnd(turn.promptView); // below any notice that came while it waited
    }
    const frame = { action: "chat", prompt: turn.prompt };
    if (Object.keys(turn.options).length) frame.options = turn.options;
    // Without one, the server starts a new conversation and sends its id first.
    if (state.conversation) frame.conversation = state.conversation;
    connection.send(frame);
    turn.sent = true;
    turn.seq = -1;
    turn.rememberedBefore = state.remembered;
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
    connection.send({ action: "reset", conversation: state.conversation });
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
    // Sent at once, or, while the connection is away, once the conversation is attached again.
    if (state.attached) connection.send({ action: "stop", conversation: state.conversation });
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

  /** New chat: the next prompt starts a new conversation (a reply running in this one goes on). */
  function newChat() {
    leaveConversation();
    openConversation(null);
    composer.focus();
  }

  /** Open a conversation from the list (or take back the one shown, if another tab has it). */
  function switchTo(id) {
    if (id === state.conversation) {
      if (state.detached) takeBack();
      return;
    }
    leaveConversation();
    openConversation(id);
  }

  /** Forget a conversation (server and list); the one shown gives way to a new one. */
  function forget(id) {
    chats.remove(id);
    pendingForgets.add(id);
    sendForgets();
    if (id === state.conversation) newChat();
  }

  function sendForgets() {
    if (!connection?.isOpen) return;
    for (const id of pendingForgets) connection.send({ action: "forget", conversation: id });
    pendingForgets.clear();
  }

  /** Whatever the page had in flight for the conversation shown is let go. */
  function leaveConversation() {
    const turn = state.turn;
    if (turn) clearTimeout(turn.stopTimer);
    if (turn && !turn.sent && turn.typed) composer.restore(turn.prompt);
    state.turn = null;
    cancelRetry();
    cancelEdit();
    withdrawTurnActions();
    clearTimeout(state.awaitingReset);
    state.awaitingReset = null;
    connection?.expectReply(false);
  }

  function openConversation(id) {
    Object.assign(state, { conversation: id, showing: null, attached: false, detached: false });
    state.attaching = null;
    state.remembered = 0;
    saveConversation(id);
    saveProgress(null);
    chats.setCurrent(id);
    view.clear();
    if (id !== null && connection?.isOpen) sendAttach(id);
    else if (connection?.isOpen) status.set("connected", "New chat · connected");
    updateControls();
  }

  function endTurn() {
    const turn = state.turn;
    if (turn) clearTimeout(turn.stopTimer);
    state.turn = null;
    saveProgress(null);
    connection?.expectReply(false);
    updateControls();
  }

  /** A connection closed or opened: nothing of an earlier one holds it or sends to it. */
  function forgetServerState() {
    const turn = state.turn;
    // A `reset` that may not have reached the server is sent again before its chat.
    if (state.awaitingReset !== null && turn && !turn.sent) turn.needsReset = true;
    clearTimeout(state.awaitingReset);
    state.awaitingReset = null;
    cancelRetry();
    state.lastReplyEnd = -Infinity;
    state.attaching = null;
    state.attached = false;
    if (turn) turn.retry = null;
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
    if (last.reply.isShown) last.reply.setActions({});
    last.promptView?.setEditable(false);
    state.lastTurn = null;
  }

  function onOpen(reconnected) {
    view.showReconnect(false);
    parts.clear(); // a part set begun on the old connection never completes
    forgetServerState();
    if (state.dropNotice) {
      // Nothing is lost by a drop: the conversation is attached again below.
      state.dropNotice.setText(WORDS.cameBack);
      state.dropNotice = null;
    }
    status.set("connected", reconnected ? "Reconnected" : "Connected");
    sendForgets();
    if (state.conversation && !state.detached) sendAttach(state.conversation);
    flush();
    updateControls();
  }

  /** A chat whose reply never began goes again, as new (below the notices since). */
  function resend(turn) {
    clearTimeout(turn.stopTimer);
    if (turn.kind === TurnKind.CONTINUE) turn.reply.unresume();
    else turn.reply.remove();
    Object.assign(turn, { reply: null, sent: false, started: false, retry: null, stopping: false });
  }

  function onClose(retryInMs, nextAttempt) {
    const turn = state.turn;
    if (turn?.sent) {
      clearTimeout(turn.stopTimer);
      if (state.conversation === null) {
        // The server's id for it never came: its reply had not begun. Send it again.
        resend(turn);
      } else {
        // The reply goes on on the server; attached again, the page gets the rest of it.
        turn.reply.setWaiting(WORDS.replyWaits);
      }
    }
    connection.expectReply(false);
    forgetServerState();
    if (state.editing) cancelEdit();
    if (connection.everOpened && !state.dropNotice && !view.isEmpty) {
      state.dropNotice = view.addNotice(WORDS.dropped);
    }
    const words = connection.everOpened
      ? "Connection lost · reconnecting"
      : "Cannot reach the server · retrying";
    status.set("reconnecting", words, {
      until: performance.now() + retryInMs,
      detail: `attempt ${nextAttempt}`,
    });
    view.showReconnect(true);
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
    chats.setExportable(!view.isEmpty);
    // The last exchange's Regenerate, Edit and Continue wait while a turn is in flight.
    view.setPhase(state.phase);
  }

  return {
    state,
    parts,
    /** The connection to send on (connection.js's, or a test's). */
    connect(socket) {
      connection = socket;
    },
    /** Where the page starts: the conversation this tab showed before a reload. */
    resume(id) {
      state.conversation = id;
      chats.setCurrent(id);
      updateControls();
    },
    receive: handleMessage,
    submit: submitPrompt,
    stop: stopReply,
    cancelEdit,
    newChat,
    switchTo,
    forget,
    regenerate() {
      if (state.phase === Phase.IDLE) regenerate();
    },
    continueReply() {
      if (state.phase === Phase.IDLE) continueReply();
    },
    editLast() {
      if (state.phase === Phase.IDLE) editLastPrompt();
    },
    takeBack,
    opened: onOpen,
    closed: onClose,
    connecting: onConnecting,
    failed(title, detail) {
      view.addError(title, detail);
    },
  };
}
