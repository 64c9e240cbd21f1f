// The session core (web_client/session.js) without a browser: server messages through its
// one switch, the person's actions, and the connection's events, against recording fakes
// of the page's views.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_FRAME_BYTES } from "../../../web_client/contract.js";
import { createSession } from "../../../web_client/session.js";

class FakeReply {
  constructor() {
    Object.assign(this, { text: "", textBefore: 0, ended: null, removed: false, hidden: false });
    Object.assign(this, { actions: null, waiting: null, cutOff: null });
  }
  get hasText() {
    return this.text.length > 0;
  }
  get hasNewText() {
    return this.text.length > this.textBefore;
  }
  get isShown() {
    return !this.removed;
  }
  append(text) {
    this.text += text;
  }
  finish(reason, summary) {
    this.ended = { reason, summary };
  }
  fail(note) {
    this.ended = { reason: "interrupted", note };
  }
  setWaiting(note) {
    this.waiting = note;
  }
  replaceNewText(text) {
    this.text = this.text.slice(0, this.textBefore) + text;
  }
  markCutOff(note) {
    this.cutOff = note;
  }
  resume() {
    this.textBefore = this.text.length;
    this.ended = null;
  }
  unresume() {}
  setActions(offer) {
    this.actions = offer;
  }
  remove() {
    this.removed = true;
  }
  setHidden(hidden) {
    this.hidden = hidden;
  }
  spokenText() {
    return this.text;
  }
}

class FakePrompt {
  constructor(text) {
    Object.assign(this, { text, note: null, removed: false, hidden: false, editable: false });
  }
  setNote(note) {
    this.note = note;
  }
  setEditable(editable) {
    this.editable = editable;
  }
  setEditing(editing) {
    this.editing = editing;
  }
  setHidden(hidden) {
    this.hidden = hidden;
  }
  remove() {
    this.removed = true;
  }
}

/** A session with fakes for every port, and a connection that records what it sent. */
function page({ saved = null } = {}) {
  const shown = { prompts: [], replies: [], errors: [], notices: [] };
  const view = {
    phase: "idle",
    addPrompt: (text) => shown.prompts.at(shown.prompts.push(new FakePrompt(text)) - 1),
    startReply: () => shown.replies.at(shown.replies.push(new FakeReply()) - 1),
    addError: (title, detail, note) => shown.errors.push({ title, detail, note }),
    addNotice(text) {
      const notice = { text, setText: (words) => (notice.text = words) };
      shown.notices.push(notice);
      return notice;
    },
    addTakeBackNotice: (text) => shown.notices.push({ text, takeBack: true }),
    removeTakeBackNotices: () => {},
    reinsert: () => {},
    moveToEnd: () => {},
    clear: () => {
      shown.prompts.length = 0;
      shown.replies.length = 0;
    },
    showReconnect: (on) => (view.reconnect = on),
    setPhase: (phase) => (view.phase = phase),
    get isEmpty() {
      return shown.prompts.length === 0;
    },
  };
  const status = { set: (state, words) => Object.assign(status, { state, words }) };
  const composer = {
    box: "",
    overLimit: false,
    restore: (text) => (composer.box = text),
    clear: () => (composer.box = ""),
    focus: () => {},
    startEdit: (text) => (composer.box = text),
    endEdit: () => {},
    setPhase: () => {},
  };
  const chats = {
    touched: [],
    touch: (id, prompt) => chats.touched.push([id, prompt]),
    setCurrent: (id) => (chats.current = id),
    remove: () => {},
    setExportable: () => {},
  };
  const stored = { conversation: saved, progress: null };
  const memory = {
    savedConversation: () => stored.conversation,
    saveConversation: (id) => (stored.conversation = id),
    savedProgress: () => stored.progress,
    saveProgress: (progress) => (stored.progress = progress),
  };
  const announcer = { said: [], say: (words) => announcer.said.push(words) };
  const settings = { options: () => ({}) };
  const session = createSession({ view, status, composer, chats, settings, memory, announcer });
  const connection = {
    sent: [],
    isOpen: true,
    everOpened: false,
    send: (frame) => connection.sent.push(frame),
    expectReply: (on) => (connection.awaiting = on),
  };
  session.connect(connection);
  session.resume(memory.savedConversation());
  connection.everOpened = true;
  session.opened(false);
  return { session, shown, view, status, composer, chats, stored, announcer, connection };
}

const generating = { type: "status", state: "generating" };
const delta = (text, seq, conversation = "c1") => ({ type: "delta", text, seq, conversation });
const done = (reason = "end") => ({ type: "done", reason, conversation: "c1", usage: { completion_tokens: 3 } });

/** `message` as the server sends one over a frame: `part`s of its JSON text. */
function split(message, id, size = 40) {
  const text = JSON.stringify(message);
  const count = Math.ceil(text.length / size);
  return Array.from({ length: count }, (_, index) => ({
    type: "part", id, index, count, data: text.slice(index * size, (index + 1) * size),
  }));
}

test("a chat: sent, its conversation named, its reply streamed, finished and announced once", () => {
  const p = page();
  p.session.submit("Name three colours.");
  assert.deepEqual(p.connection.sent, [{ action: "chat", prompt: "Name three colours." }]);
  assert.equal(p.session.state.phase, "sent");
  p.session.receive({ type: "conversation", id: "c1" });
  assert.equal(p.session.state.conversation, "c1");
  assert.equal(p.stored.conversation, "c1");
  p.session.receive({ ...generating, conversation: "c1" });
  p.session.receive(delta("Red, ", 0));
  p.session.receive(delta("green", 1));
  assert.equal(p.session.state.phase, "streaming");
  assert.equal(p.view.phase, "streaming");
  p.session.receive(done());
  const [reply] = p.shown.replies;
  assert.equal(reply.text, "Red, green");
  assert.equal(reply.ended.reason, "end");
  assert.equal(p.session.state.phase, "idle");
  assert.deepEqual(p.announcer.said, ["Reply: Red, green"]);
  assert.deepEqual(reply.actions, { regenerate: true, continue: false });
  assert.equal(p.status.words, "Ready");
});

test("a delta already shown is not shown twice, and another conversation's reply is not shown", () => {
  const p = page();
  p.session.submit("hi");
  p.session.receive({ type: "conversation", id: "c1" });
  p.session.receive(delta("one ", 0));
  p.session.receive(delta("one ", 0));
  p.session.receive(delta("elsewhere", 1, "c2"));
  p.session.receive(delta("two", 1));
  assert.equal(p.shown.replies[0].text, "one two");
});

test("a refused chat gives its prompt back with the error's own words", () => {
  const p = page();
  p.session.submit("a very long question");
  p.session.receive({ type: "error", code: "context_length_exceeded", message: "2100 tokens, limit 2048" });
  assert.equal(p.composer.box, "a very long question");
  assert.equal(p.shown.prompts[0].removed, true);
  assert.match(p.shown.errors[0].title, /Shorten it/);
  assert.equal(p.shown.errors[0].detail, "2100 tokens, limit 2048");
  assert.equal(p.session.state.phase, "idle");
});

test("an error that ends a reply keeps the text that came", () => {
  const p = page();
  p.session.submit("hi");
  p.session.receive({ type: "conversation", id: "c1" });
  p.session.receive(delta("half", 0));
  p.session.receive({ type: "error", code: "engine_error", message: "boom", conversation: "c1" });
  assert.equal(p.shown.replies[0].text, "half");
  assert.equal(p.shown.replies[0].ended.reason, "interrupted");
  assert.equal(p.composer.box, "");
});

test("a prompt over one frame is refused before it is sent, with the limit named", () => {
  const p = page();
  const prompt = "☃".repeat(Math.ceil(MAX_FRAME_BYTES / 3) + 10);
  p.composer.box = prompt;
  p.session.submit(prompt);
  assert.deepEqual(p.connection.sent, []);
  assert.match(p.shown.errors[0].title, /the limit is 32 KB/);
  assert.equal(p.composer.box, prompt); // still there to shorten
  assert.equal(p.session.state.phase, "idle");
});

test("a conversation attached in parts, interleaved with another message's, is drawn whole", () => {
  const p = page({ saved: "c1" });
  assert.deepEqual(p.connection.sent, [{ action: "attach", conversation: "c1" }]);
  const turns = [];
  for (let n = 0; n < 5; n += 1) {
    turns.push({ role: "user", content: `question ${n}` }, { role: "assistant", content: `answer ${n} `.repeat(20) });
  }
  const attached = { type: "attached", conversation: "c1", turns, reply: null, interrupted: false };
  const error = { type: "error", code: "rate_limited", message: "slow" };
  const a = split(attached, "a");
  const b = split(error, "b");
  p.session.receive({ type: "part", id: "junk", index: 0, count: 2, data: "{" }); // never completes
  p.session.receive({ type: "part", id: "bad", index: 0, count: 1, data: "not json" });
  for (let i = 0; i < a.length; i += 1) {
    p.session.receive(a[i]);
    if (b[i]) p.session.receive(b[i]);
  }
  assert.deepEqual(p.shown.prompts.map((prompt) => prompt.text), turns.filter((t) => t.role === "user").map((t) => t.content));
  assert.deepEqual(p.shown.replies.map((reply) => reply.text), turns.filter((t) => t.role === "assistant").map((t) => t.content));
  assert.equal(p.shown.errors.length, 1); // the error's parts joined too, once
  assert.equal(p.session.state.remembered, 5);
  assert.equal(p.session.state.attached, true);
});

test("a drop mid-reply waits, and the new connection attaches after the last delta shown", () => {
  const p = page();
  p.session.submit("hi");
  p.session.receive({ type: "conversation", id: "c1" });
  p.session.receive(delta("one ", 0));
  p.session.receive(delta("two ", 1));
  p.connection.isOpen = false;
  p.session.closed(500, 2);
  assert.match(p.shown.replies[0].waiting, /goes on when it is back/);
  assert.equal(p.view.reconnect, true);
  p.connection.isOpen = true;
  p.connection.sent.length = 0;
  p.session.opened(true);
  assert.deepEqual(p.connection.sent, [{ action: "attach", conversation: "c1", seq: 1 }]);
  p.session.receive({ type: "attached", conversation: "c1", turns: [], reply: { prompt: "hi" } });
  p.session.receive(delta("two ", 1)); // replayed: already shown
  p.session.receive(delta("three", 2));
  p.session.receive(done());
  assert.equal(p.shown.replies[0].text, "one two three");
  assert.match(p.shown.notices[0].text, /came back/);
});

test("API Gateway's own error (no type) is shown; a type this page does not know is not", () => {
  const p = page();
  p.session.receive({ type: "future_thing", x: 1 });
  assert.equal(p.shown.errors.length, 0);
  p.session.receive({ message: "Internal server error" });
  assert.equal(p.shown.errors.length, 1);
  assert.equal(p.shown.errors[0].detail, "Internal server error");
});

test("Stop sends stop for the conversation, and the stopped reply ends as stopped", () => {
  const p = page();
  p.session.submit("hi");
  p.session.receive({ type: "conversation", id: "c1" });
  p.session.receive(delta("some", 0));
  p.session.stop();
  assert.deepEqual(p.connection.sent.at(-1), { action: "stop", conversation: "c1" });
  assert.equal(p.session.state.phase, "stopping");
  p.session.receive(done("stopped"));
  assert.equal(p.shown.replies[0].ended.reason, "stopped");
  assert.deepEqual(p.announcer.said, ["Reply (stopped): some"]);
});
