// Copying text for the person, with the button saying how it went for a moment.

const FEEDBACK_MS = 1500;

/**
 * Copy `text`; `button` shows "Copied" (or "Copy failed") and then its own words again.
 * @returns {Promise<boolean>}
 */
export async function copyText(text, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // No clipboard access (an insecure origin, or permission refused).
  }
  if (button) {
    const words = button.dataset.words ?? button.textContent;
    button.dataset.words = words;
    button.dataset.keep = ""; // a streaming reply leaves it as it is (markdown_stream.js)
    button.textContent = copied ? "Copied" : "Copy failed";
    clearTimeout(Number(button.dataset.timer));
    button.dataset.timer = String(
      setTimeout(() => {
        button.textContent = words;
        delete button.dataset.keep;
      }, FEEDBACK_MS),
    );
  }
  return copied;
}
