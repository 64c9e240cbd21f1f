// The conversation on screen, downloaded as a file: Markdown to read, or JSON in the
// server's own shape (`turns`, docs/protocol.md) to keep or process. Built from the text
// the page shows (a reply's Markdown source, as the model wrote it), and saved with a
// blob: link, so nothing leaves the browser.

/**
 * @typedef {{role: "user" | "assistant", content: string}} ExportedTurn
 * @typedef {{conversation: string | null, title: string, model: string, turns: ExportedTurn[]}} Transcript
 */

/** @param {Transcript} transcript */
export function toMarkdown({ title, model, turns }) {
  const lines = [`# ${title}`, ""];
  if (model) lines.push(`Model: ${model}`, "");
  for (const { role, content } of turns) {
    lines.push(role === "user" ? "## You" : "## Model", "", content.trimEnd(), "");
  }
  return lines.join("\n");
}

/** @param {Transcript} transcript */
export function toJson({ conversation, title, model, turns }) {
  const exported = new Date().toISOString();
  return `${JSON.stringify({ conversation, title, model, exported, turns }, null, 2)}\n`;
}

/** Offer `text` as a download named `name`. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  // Not a click "elsewhere" for an open menu (dom.js, closesLikeAMenu): the Chats panel stays.
  link.addEventListener("click", (event) => event.stopPropagation());
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy by the time the click returns; the next task frees it.
  setTimeout(() => URL.revokeObjectURL(url));
}

/** A file name from a title: lower case, words joined by hyphens. */
export function fileName(title, extension) {
  const slug = title
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return `llambda-${slug || "conversation"}.${extension}`;
}
