"""The page by keyboard alone, as measured in the browser: Tab reaches every control, each
with a focus ring that shows; Enter, Escape and the buttons do what a mouse would; focus
goes where the person is headed after send, stop and the menus; a streaming reply is
announced politely and once (never token by token); and reduced motion stops the
animations.

The server is scripted (scripted_server.py): exact replies, not generation.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.web.page_helpers import connected
from tests.web.scripted_server import done, reply_frames

pytestmark = pytest.mark.browser

REPLY = "See [the docs](https://example.com/docs).\n\n```sh\nls -l\n```\n\nDone."

# What has focus, as a person would name it, and whether its focus can be seen: an outline
# of 2px or more, or a box shadow where the outline is off.
FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2)
    || style.boxShadow !== "none";
  const name = el.getAttribute("aria-label") || el.textContent.trim() || el.id;
  return { tag: el.tagName.toLowerCase(), id: el.id, name: name.slice(0, 40), ring,
           visible: el.checkVisibility() };
}"""


def script(message: dict):
    if message.get("action") == "chat" and message["prompt"].startswith("hold"):
        return reply_frames(*(f"word{n} " for n in range(40)), pause=0.01)
    if message.get("action") == "chat":
        return reply_frames(REPLY, end=done())
    if message.get("action") == "stop":
        return [(0, done("stopped"))]
    if message.get("action") == "reset":
        return [(0, {"type": "reset", "stopped": False})]
    return []


@pytest.fixture
def page(scripted, open_page) -> Page:
    server = scripted(script, config={"model": "tiny-test-model"})
    return connected(open_page(server.http_url, permissions=["clipboard-read", "clipboard-write"]))


def _answered(page: Page, prompt: str = "show me") -> None:
    page.keyboard.type(prompt)
    page.keyboard.press("Enter")
    expect(page.locator(".message.reply").last).to_have_attribute("data-reason", "end")


def _tab_round(page: Page) -> list[dict]:
    """Every stop of Tab from the top of the page until focus comes round again."""
    page.locator(".skip-link").focus()  # the page's first stop
    stops = [page.evaluate(FOCUSED)]
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        # Past the last control focus leaves the page (the browser's own controls).
        if focused == stops[0] or focused["tag"] == "body":
            break
        stops.append(focused)
    return stops


def test_tab_reaches_every_control_in_order_each_with_a_visible_ring(page):
    _answered(page)
    stops = _tab_round(page)
    names = [stop["name"] for stop in stops]
    assert names[:4] == ["Skip to the message box", "Chats", "Settings", "New chat"]
    expected = [
        "Edit your last message",
        "the docs",
        "Copy sh code",
        "Copy the reply",
        "Regenerate the reply",
        "prompt",
        "Send",
    ]
    assert [name for name in names if name in expected] == expected, names
    unseen = [stop for stop in stops if not (stop["ring"] and stop["visible"])]
    assert unseen == []


def test_focus_stays_in_the_box_after_send_and_comes_back_to_it_after_stop(page):
    box = page.locator("#prompt")
    expect(box).to_be_focused()  # the page opens ready to type
    page.keyboard.type("hold on")
    page.keyboard.press("Enter")
    expect(page.locator(".message.reply.streaming")).to_contain_text("word3")
    expect(box).to_be_focused()  # the next message can be typed while this one streams
    # Tab to Stop and press it: focus does not stay on a button that is going away.
    page.locator("#stop").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".message.reply")).to_have_attribute("data-reason", "stopped")
    expect(box).to_be_focused()
    # Escape in the box stops too.
    page.keyboard.type("hold again")
    page.keyboard.press("Enter")
    expect(page.locator(".message.reply.streaming")).to_contain_text("word3")
    page.keyboard.press("Escape")
    expect(page.locator(".message.reply").last).to_have_attribute("data-reason", "stopped")


def test_menus_open_and_close_by_keyboard_and_give_focus_back(page):
    _answered(page, "first topic")
    settings = page.locator("#settings summary")
    settings.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#settings")).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    expect(page.locator("#max-tokens")).to_be_focused()
    page.keyboard.type("64")
    page.keyboard.press("Escape")
    expect(page.locator("#settings")).not_to_have_attribute("open", "")
    expect(settings).to_be_focused()

    chats = page.locator("#chats summary")
    chats.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator(".open-chat")).to_be_focused()
    page.keyboard.press("Escape")
    expect(chats).to_be_focused()


def test_the_reply_buttons_work_by_keyboard(page):
    _answered(page)
    page.get_by_role("button", name="Copy sh code").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#announcer")).to_have_text("Code copied.")
    assert page.evaluate("navigator.clipboard.readText()") == "ls -l"

    page.get_by_role("button", name="Edit your last message").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#prompt")).to_be_focused()
    expect(page.locator("#prompt")).to_have_value("show me")
    page.keyboard.press("Escape")  # cancels the edit
    expect(page.locator("#prompt")).to_have_value("")

    page.get_by_role("button", name="Regenerate the reply").focus()
    page.keyboard.press("Space")
    expect(page.locator(".message.reply:not([hidden])")).to_have_count(1)
    expect(page.locator(".message.reply:not([hidden])")).to_have_attribute("data-reason", "end")


# What the live regions say: the announcer, and the status line's words (its clock beside
# them is hidden from screen readers).
COUNT_LIVE = """() => {
  window.__said = [];
  for (const id of ["announcer", "status-text"]) {
    const node = document.getElementById(id);
    new MutationObserver(() => window.__said.push([id, node.textContent]))
      .observe(node, { childList: true, subtree: true, characterData: true });
  }
}"""


def test_a_streaming_reply_is_announced_once_politely_never_token_by_token(page, scripted):
    page.evaluate(COUNT_LIVE)
    page.keyboard.type("hold on")
    page.keyboard.press("Enter")
    reply = page.locator(".message.reply")
    expect(reply).to_contain_text("word39")
    # The growing text is in no live region: nothing of it is said while it streams.
    in_live = reply.evaluate("(r) => Boolean(r.closest('[aria-live], [role=status], [role=log]'))")
    assert in_live is False
    expect(reply).to_have_attribute("aria-busy", "true")
    assert [said for said in page.evaluate("window.__said") if said[0] == "announcer"] == []
    page.locator("#stop").click()
    expect(reply).to_have_attribute("data-reason", "stopped")
    announced = [said for said in page.evaluate("window.__said") if said[0] == "announcer"]
    assert len(announced) == 1 and announced[0][1].startswith("Reply (stopped): word0 word1")
    assert page.locator("#announcer").get_attribute("aria-live") == "polite"
    # The status line said a few states, not a word per token.
    assert len([s for s in page.evaluate("window.__said") if s[0] == "status-text"]) <= 4


CARET_ANIMATION = """() => getComputedStyle(
  document.querySelector(".reply.streaming .bubble > p:last-child"), "::after").animationName"""


@pytest.mark.parametrize(("motion", "animation"), [("no-preference", "pulse"), ("reduce", "none")])
def test_reduced_motion_stops_the_streaming_caret(scripted, open_page, motion, animation):
    server = scripted(script)
    page = connected(open_page(server.http_url, reduced_motion=motion))
    page.keyboard.type("hold on")
    page.keyboard.press("Enter")
    expect(page.locator(".message.reply.streaming")).to_contain_text("word3")
    assert page.evaluate(CARET_ANIMATION) == animation
