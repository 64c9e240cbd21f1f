// Plain words for the server's error codes (docs/protocol.md), keyed by code. The codes
// themselves, and which of them refuse a chat before any reply began, are the contract's
// (contract.js); a node test fails if a code there has no words here. The server's own
// message is shown beneath, as text.

import { ERROR_CODES, REFUSED_CHAT_CODES as REFUSED } from "./contract.js";

export const FRIENDLY = Object.freeze({
  bad_json: "The server could not read what the page sent.",
  unknown_action: "The server did not recognise that request.",
  bad_request: "The server refused that request.",
  too_large: "That message is too long for the server. Shorten it and send it again.",
  context_length_exceeded:
    "That message is too long for the model: it does not fit even with no earlier messages. Shorten it and send it again.",
  busy: "The model is still busy with the previous reply. Send your message again in a moment.",
  rate_limited: "That was a lot of messages in a short time. Wait a moment, then try again.",
  engine_error: "The model failed while answering. You can send another message.",
  activation_limit: "The model's licence could not be activated; the site's owner has to fix it.",
  unavailable: "The server could not start a reply just now. Try again in a moment.",
  not_found: "This conversation is no longer on the server.",
  not_attached: "This conversation is open in another tab, so the message was not sent here.",
  budget_exhausted:
    "A token budget is used up, so no reply was started. The note below says which budget, and when it resets.",
  budget_cut_short:
    "The reply stopped where a token budget ran out; what it wrote so far is kept. The note below says when the budget resets.",
  generation_off: "The site's owner has paused replies for now. Try again later.",
});

/** Every code the server may send (contract.js). */
export const KNOWN_CODES = Object.freeze(Object.values(ERROR_CODES));

/** Codes that mean the chat was refused before any reply began: its prompt goes back. */
export const REFUSED_CHAT_CODES = new Set(REFUSED);

/** @returns {string} */
export function friendlyError(code) {
  return Object.hasOwn(FRIENDLY, code) ? FRIENDLY[code] : "The server reported a problem.";
}
