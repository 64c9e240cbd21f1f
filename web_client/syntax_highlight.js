// Colours a finished code block. Prism (prism.js) is loaded the first time a reply has a
// code block, not with the page; its tokens become spans filled through textContent.

const MAX_CHARS = 20000; // past this, plain text: colouring would cost more than it gives

let prism = null;

/** Colour the code in `block` (a .code-block) once Prism is loaded; later, not now. */
export function highlightCodeBlock(block) {
  const code = block.querySelector("pre > code");
  const language = block.dataset.language;
  if (!code || !language || code.textContent.length > MAX_CHARS) return;
  prism ??= import("./prism.js");
  prism
    .then(({ tokenize }) => {
      if (!code.isConnected || code.dataset.highlighted) return;
      const tokens = tokenize(code.textContent, language);
      if (!tokens) return;
      code.replaceChildren(...tokens.map(toNode));
      code.dataset.highlighted = language;
    })
    .catch((error) => console.warn("llambda: code stays plain:", error));
}

function toNode(token) {
  if (typeof token === "string") return document.createTextNode(token);
  const span = document.createElement("span");
  const aliases = token.alias ? [token.alias].flat() : [];
  span.className = ["token", token.type, ...aliases].join(" ");
  const content = Array.isArray(token.content) ? token.content : [token.content];
  span.append(...content.map(toNode));
  return span;
}
