// What this tab remembers across a reload (sessionStorage, so each tab has its own): the
// conversation it shows, and how far it got with the reply that is running, so a reload
// attaches with that `seq` and shows the reply once, whole (docs/protocol.md, "Resuming a
// reply"). Storage can be unavailable (private mode): then a reload starts afresh.

const CURRENT_KEY = "llambda.conversation";
const PROGRESS_KEY = "llambda.reply";

/** @returns {string | null} the id of the conversation this tab shows */
export function savedConversation() {
  return read(CURRENT_KEY);
}

/** @param {string | null} id */
export function saveConversation(id) {
  write(CURRENT_KEY, id);
}

/**
 * The running reply as far as this tab has shown it.
 * @returns {{conversation: string, prompt: string, seq: number, text: string} | null}
 */
export function savedProgress() {
  try {
    const progress = JSON.parse(read(PROGRESS_KEY) ?? "null");
    const valid =
      progress !== null &&
      typeof progress.conversation === "string" &&
      typeof progress.prompt === "string" &&
      Number.isInteger(progress.seq) &&
      typeof progress.text === "string";
    return valid ? progress : null;
  } catch {
    return null;
  }
}

/** @param {{conversation: string, prompt: string, seq: number, text: string} | null} progress */
export function saveProgress(progress) {
  write(PROGRESS_KEY, progress === null ? null : JSON.stringify(progress));
}

function read(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // See the top of this file.
  }
}
