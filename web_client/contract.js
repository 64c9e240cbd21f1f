// Generated from lambda_image/llambda/contract.py by `make contract`: do not edit.
// The one owner of these facts is that module; a test fails when this file differs.

export const MAX_FRAME_BYTES = 32768;
export const MAX_MESSAGE_BYTES = 131072;
export const IDLE_TIMEOUT_SECONDS = 600;
export const MAX_CONNECTION_SECONDS = 7200;
export const CLOSE_MESSAGE_TOO_BIG = 1009;
export const ACTIONS = Object.freeze({
  "CHAT": "chat",
  "ATTACH": "attach",
  "HISTORY": "history",
  "FORGET": "forget",
  "STOP": "stop",
  "RESET": "reset",
  "PING": "ping"
});
export const MESSAGE_TYPES = Object.freeze({
  "CONVERSATION": "conversation",
  "STATUS": "status",
  "DELTA": "delta",
  "DONE": "done",
  "ERROR": "error",
  "ATTACHED": "attached",
  "HISTORY": "history",
  "FORGOTTEN": "forgotten",
  "DETACHED": "detached",
  "PONG": "pong",
  "RESET": "reset",
  "PART": "part"
});
export const ERROR_CODES = Object.freeze({
  "BAD_JSON": "bad_json",
  "UNKNOWN_ACTION": "unknown_action",
  "BAD_REQUEST": "bad_request",
  "TOO_LARGE": "too_large",
  "CONTEXT_LENGTH_EXCEEDED": "context_length_exceeded",
  "BUSY": "busy",
  "RATE_LIMITED": "rate_limited",
  "ENGINE_ERROR": "engine_error",
  "ACTIVATION_LIMIT": "activation_limit",
  "UNAVAILABLE": "unavailable",
  "NOT_FOUND": "not_found",
  "NOT_ATTACHED": "not_attached",
  "BUDGET_EXHAUSTED": "budget_exhausted",
  "BUDGET_CUT_SHORT": "budget_cut_short",
  "GENERATION_OFF": "generation_off"
});
export const REFUSED_CHAT_CODES = Object.freeze([
  "bad_json",
  "bad_request",
  "budget_exhausted",
  "busy",
  "context_length_exceeded",
  "generation_off",
  "not_attached",
  "not_found",
  "rate_limited",
  "too_large",
  "unavailable",
  "unknown_action"
]);
export const DONE_REASONS = Object.freeze({
  "END": "end",
  "LENGTH": "length",
  "STOP": "stop",
  "STOPPED": "stopped"
});
