// The page's words for error codes: one for every code the contract names (contract.js),
// and none for a code it does not.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ERROR_CODES, REFUSED_CHAT_CODES as CONTRACT_REFUSED } from "../../../web_client/contract.js";
import { FRIENDLY, friendlyError, REFUSED_CHAT_CODES } from "../../../web_client/errors.js";

test("every error code in the contract has its own words", () => {
  const missing = Object.values(ERROR_CODES).filter((code) => !Object.hasOwn(FRIENDLY, code));
  assert.deepEqual(missing, []);
});

test("no words for a code the contract does not have", () => {
  const codes = new Set(Object.values(ERROR_CODES));
  assert.deepEqual(Object.keys(FRIENDLY).filter((code) => !codes.has(code)), []);
});

test("the refused-chat codes are the contract's", () => {
  assert.deepEqual([...REFUSED_CHAT_CODES].sort(), [...CONTRACT_REFUSED].sort());
});

test("a prompt too long for the model's context is told to be shortened", () => {
  assert.match(friendlyError("context_length_exceeded"), /Shorten/);
});

test("an unknown code, or one named like an object's own property, gets the general words", () => {
  assert.equal(friendlyError("no_such_code"), "The server reported a problem.");
  assert.equal(friendlyError("constructor"), "The server reported a problem.");
});
