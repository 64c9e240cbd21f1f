// The one way this page makes an element: a tag, an optional class, and text set through
// textContent (never parsed as markup).

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A button that does nothing by itself: the page acts on its `data-action` (one listener). */
export function actionButton(action, text, label) {
  const button = element("button", `action ${action}`, text);
  button.type = "button";
  button.dataset.action = action;
  if (label) button.setAttribute("aria-label", label);
  return button;
}

/** A <details> panel that closes as a menu does: Escape (focus back on its summary), or a
 * click elsewhere. */
export function closesLikeAMenu(panel) {
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && panel.open) {
      event.stopPropagation();
      panel.open = false;
      panel.querySelector("summary")?.focus();
    }
  });
  document.addEventListener("click", (event) => {
    // Where the click was when it happened: a button the panel replaced as it acted
    // (Forget) is no longer in it, but was not a click elsewhere.
    if (panel.open && !event.composedPath().includes(panel)) panel.open = false;
  });
}
