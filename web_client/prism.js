// Prism 1.30.0 (npm `prismjs`, MIT: vendor/prismjs-1.30.0/LICENSE), vendored as published
// and loaded as same-origin scripts under the page's CSP. Only its tokenizer is used: the
// text is split into typed pieces here, and syntax_highlight.js makes the elements.

import "./prism_manual_mode.js";
import "./vendor/prismjs-1.30.0/components/prism-core.min.js";
import "./vendor/prismjs-1.30.0/components/prism-markup.min.js";
import "./vendor/prismjs-1.30.0/components/prism-css.min.js";
import "./vendor/prismjs-1.30.0/components/prism-clike.min.js";
import "./vendor/prismjs-1.30.0/components/prism-javascript.min.js";
import "./vendor/prismjs-1.30.0/components/prism-typescript.min.js";
import "./vendor/prismjs-1.30.0/components/prism-python.min.js";
import "./vendor/prismjs-1.30.0/components/prism-bash.min.js";
import "./vendor/prismjs-1.30.0/components/prism-json.min.js";
import "./vendor/prismjs-1.30.0/components/prism-c.min.js";
import "./vendor/prismjs-1.30.0/components/prism-cpp.min.js";
import "./vendor/prismjs-1.30.0/components/prism-java.min.js";
import "./vendor/prismjs-1.30.0/components/prism-go.min.js";
import "./vendor/prismjs-1.30.0/components/prism-rust.min.js";
import "./vendor/prismjs-1.30.0/components/prism-sql.min.js";
import "./vendor/prismjs-1.30.0/components/prism-yaml.min.js";
import "./vendor/prismjs-1.30.0/components/prism-diff.min.js";

const { Prism } = globalThis;

// Names models write after ``` that Prism files under another name.
const ALIASES = {
  "c++": "cpp",
  console: "bash",
  golang: "go",
  h: "c",
  hpp: "cpp",
  jsonc: "json",
  py: "python",
  python3: "python",
  rs: "rust",
  sh: "bash",
  shell: "bash",
  ts: "typescript",
  yml: "yaml",
  zsh: "bash",
};

/**
 * Prism's tokens for `text`, or null for a language it does not know.
 * @returns {Array<string | {type: string, alias?: string | string[], content: unknown}> | null}
 */
export function tokenize(text, language) {
  const name = language.toLowerCase();
  const grammar = Prism.languages[ALIASES[name] ?? name];
  if (!grammar || typeof grammar !== "object") return null;
  return Prism.tokenize(text, grammar);
}
