// Joining `part` messages (docs/protocol.md): in order, interleaved, and a broken set
// dropped without throwing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_FRAME_BYTES } from "../../../web_client/contract.js";
import { MAX_PENDING_SETS, PartJoiner } from "../../../web_client/message_parts.js";

/** `message` split as the server splits it: slices of its JSON text, each in one frame. */
function split(message, id, size = 10) {
  const text = JSON.stringify(message);
  const count = Math.ceil(text.length / size);
  return Array.from({ length: count }, (_, index) => ({
    type: "part",
    id,
    index,
    count,
    data: text.slice(index * size, (index + 1) * size),
  }));
}

const HISTORY = {
  type: "history",
  conversation: "c1",
  turns: [
    { role: "user", content: "naïve ☃ question" },
    { role: "assistant", content: "x".repeat(100) },
  ],
};

test("parts in order join into the message", () => {
  const joiner = new PartJoiner();
  const parts = split(HISTORY, "a1");
  assert.ok(parts.length > 3);
  const results = parts.map((part) => joiner.add(part));
  assert.deepEqual(results.slice(0, -1), Array(parts.length - 1).fill(null));
  assert.deepEqual(results.at(-1), HISTORY);
  assert.equal(joiner.pending.size, 0);
  assert.equal(joiner.dropped, 0);
});

test("one part alone is a whole message", () => {
  const joiner = new PartJoiner();
  const [only] = split({ type: "pong" }, "b", 1000);
  assert.equal(only.count, 1);
  assert.deepEqual(joiner.add(only), { type: "pong" });
});

test("two messages' parts interleaved each join whole", () => {
  const joiner = new PartJoiner();
  const attached = { type: "attached", conversation: "c2", turns: [{ role: "user", content: "y".repeat(60) }] };
  const first = split(HISTORY, "one");
  const second = split(attached, "two");
  const joined = [];
  for (let i = 0; i < Math.max(first.length, second.length); i += 1) {
    for (const part of [first[i], second[i]]) {
      if (!part) continue;
      const message = joiner.add(part);
      if (message) joined.push(message);
    }
  }
  assert.deepEqual(joined, second.length < first.length ? [attached, HISTORY] : [HISTORY, attached]);
});

test("a gap, a repeat or a changed count drops the set, and the next set still joins", () => {
  for (const spoil of [
    (parts) => parts.filter((_, i) => i !== 2), // a part missing
    (parts) => [parts[0], parts[1], parts[1], ...parts.slice(2)], // a part twice
    (parts) => parts.map((p, i) => (i === 2 ? { ...p, count: p.count + 1 } : p)), // recounted
    (parts) => [parts[1], parts[0], ...parts.slice(2)], // out of order
  ]) {
    const joiner = new PartJoiner();
    const results = spoil(split(HISTORY, "s")).map((part) => joiner.add(part));
    assert.deepEqual(results.filter(Boolean), []);
    assert.ok(joiner.dropped >= 1);
    assert.deepEqual(split(HISTORY, "s").map((part) => joiner.add(part)).at(-1), HISTORY);
  }
});

test("malformed parts are ignored without throwing", () => {
  const joiner = new PartJoiner();
  const bad = [
    undefined,
    null,
    {},
    { type: "part", id: "x", index: 0, count: 0, data: "" },
    { type: "part", id: "x", index: 1, count: 1, data: "{}" },
    { type: "part", id: "x", index: -1, count: 2, data: "{}" },
    { type: "part", id: "x", index: 0.5, count: 2, data: "{}" },
    { type: "part", id: 7, index: 0, count: 1, data: "{}" },
    { type: "part", id: "x", index: 0, count: 1, data: 42 },
    { type: "part", id: "x", index: 0, count: 1, data: "{not json" },
    { type: "part", id: "x", index: 0, count: 1, data: "[1, 2]" },
    { type: "part", id: "x", index: 0, count: 1, data: "null" },
    { type: "part", id: "x", index: 0, count: 1, data: '{"type":"part","id":"y"}' },
  ];
  for (const part of bad) assert.equal(joiner.add(part), null);
  assert.equal(joiner.pending.size, 0);
});

test("a set whose start never came is ignored", () => {
  const joiner = new PartJoiner();
  const parts = split(HISTORY, "late");
  assert.deepEqual(parts.slice(1).map((part) => joiner.add(part)).filter(Boolean), []);
});

test("incomplete sets are given up: on a new connection, and past the most kept at once", () => {
  const joiner = new PartJoiner();
  joiner.add(split(HISTORY, "cut")[0]);
  joiner.clear();
  assert.equal(joiner.pending.size, 0);
  const rest = split(HISTORY, "cut").slice(1);
  assert.deepEqual(rest.map((part) => joiner.add(part)).filter(Boolean), []);

  for (let n = 0; n < MAX_PENDING_SETS + 5; n += 1) joiner.add(split(HISTORY, `open${n}`)[0]);
  assert.equal(joiner.pending.size, MAX_PENDING_SETS);
  assert.ok(!joiner.pending.has("open0"));
});

test("a message as large as a conversation's history joins from frame-sized parts", () => {
  const big = { ...HISTORY, turns: Array.from({ length: 40 }, (_, i) => ({ role: "user", content: `${i} ${"z".repeat(3000)}` })) };
  const parts = split(big, "big", MAX_FRAME_BYTES - 200);
  assert.ok(parts.length >= 3);
  const joiner = new PartJoiner();
  assert.deepEqual(parts.map((part) => joiner.add(part)).at(-1), big);
});
