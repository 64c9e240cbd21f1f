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
