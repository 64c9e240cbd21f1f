// A tiny, safe Markdown subset for model output: fenced code blocks, bullet and numbered
// lists, headings, paragraphs, `inline code` and **bold**. Every node is made with
// createElement and filled with textContent, so no model text is ever parsed as HTML and
// nothing in it can run script. Unclosed fences (a reply still streaming) render as code.

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const CONTINUATION = /^\s{2,}\S/;
const INLINE = /(`[^`\n]+`|\*\*[^*\n]+\*\*)/;

/**
 * Render model text into a DocumentFragment of safe elements.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      i = renderFence(lines, i + 1, fence[1], fence[2], fragment);
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      i = renderList(lines, i, fragment);
    } else if (HEADING.test(line)) {
      const [, hashes, title] = HEADING.exec(line);
      const heading = document.createElement("p");
      heading.className = `md-heading md-h${hashes.length}`;
      appendInline(heading, title);
      fragment.append(heading);
      i += 1;
    } else if (line.trim() === "") {
      i += 1;
    } else {
      i = renderParagraph(lines, i, fragment);
    }
  }
  return fragment;
}

function renderFence(lines, start, marker, language, parent) {
  const body = [];
  let i = start;
  const closing = new RegExp(`^\\s*${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`);
  while (i < lines.length && !closing.test(lines[i])) {
    body.push(lines[i]);
    i += 1;
  }
  const pre = document.createElement("pre");
  pre.className = "md-code";
  const code = document.createElement("code");
  if (language) {
    pre.dataset.language = language;
    code.className = `language-${language}`;
  }
  code.textContent = body.join("\n");
  pre.append(code);
  parent.append(pre);
  return i + 1; // past the closing fence (or past the end when it never closed)
}

function renderList(lines, start, parent) {
  const ordered = NUMBERED.test(lines[start]) && !BULLET.test(lines[start]);
  const pattern = ordered ? NUMBERED : BULLET;
  const list = document.createElement(ordered ? "ol" : "ul");
  list.className = "md-list";
  if (ordered) list.start = Number(NUMBERED.exec(lines[start])[1]);
  let i = start;
  let itemText = null;
  const flush = () => {
    if (itemText === null) return;
    const item = document.createElement("li");
    appendInline(item, itemText);
    list.append(item);
  };
  while (i < lines.length) {
    const match = pattern.exec(lines[i]);
    if (match) {
      flush();
      itemText = ordered ? match[2] : match[1];
    } else if (itemText !== null && CONTINUATION.test(lines[i])) {
      itemText += `\n${lines[i].trim()}`;
    } else {
      break;
    }
    i += 1;
  }
  flush();
  parent.append(list);
  return i;
}

function renderParagraph(lines, start, parent) {
  const body = [];
  let i = start;
  while (
    i < lines.length &&
    lines[i].trim() !== "" &&
    !FENCE.test(lines[i]) &&
    !BULLET.test(lines[i]) &&
    !NUMBERED.test(lines[i]) &&
    !HEADING.test(lines[i])
  ) {
    body.push(lines[i]);
    i += 1;
  }
  const paragraph = document.createElement("p");
  appendInline(paragraph, body.join("\n"));
  parent.append(paragraph);
  return i;
}

/** Append text with `code` and **bold** spans; everything else stays plain text. */
function appendInline(parent, text) {
  // split() with a capturing group puts the matched spans at the odd indices.
  text.split(INLINE).forEach((part, index) => {
    if (!part) return;
    if (index % 2 === 1 && part.startsWith("`")) {
      const code = document.createElement("code");
      code.textContent = part.slice(1, -1);
      parent.append(code);
    } else if (index % 2 === 1) {
      const strong = document.createElement("strong");
      strong.textContent = part.slice(2, -2);
      parent.append(strong);
    } else {
      parent.append(document.createTextNode(part));
    }
  });
}
