// Read by Prism's core as it loads (prism.js imports this first): never colour the page by
// itself. Prism's own highlighting writes markup as a string; this page only asks it for
// tokens.
globalThis.Prism = { manual: true, disableWorkerMessageHandler: true };
