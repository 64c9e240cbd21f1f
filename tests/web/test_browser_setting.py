"""The browser tests drive the Chromium that CHROMIUM names, which the Makefile hands them."""

from __future__ import annotations

import pytest

from tests.web.conftest import makefile_chromium


def test_the_makefile_hands_its_setting_to_the_tests():
    assert makefile_chromium("CHROMIUM=/opt/any/chrome") == "/opt/any/chrome"
    assert makefile_chromium("CHROMIUM=playwright") == "playwright"
    assert makefile_chromium()  # a default, owned by the Makefile


@pytest.mark.browser
def test_the_browser_tests_launch_the_chromium_that_CHROMIUM_names(
    chromium, playwright_driver, tmp_path, monkeypatch
):
    # A stand-in that records its own start, then runs the browser the suite uses now.
    real = chromium.executable(playwright_driver)
    started = tmp_path / "started"
    stand_in = tmp_path / "chromium"
    stand_in.write_text(f'#!/bin/sh\necho "$@" > "{started}"\nexec "{real}" "$@"\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(stand_in))

    browser = chromium.launch(playwright_driver)
    try:
        page = browser.new_page()
        page.set_content("<p>launched</p>")
        assert page.text_content("p") == "launched"
    finally:
        browser.close()
    assert "--headless" in started.read_text()


class _RecordingPlaywright:
    """Only what Chromium.launch touches; it records the options of each launch."""

    def __init__(self) -> None:
        self.chromium = self
        self.executable_path = "/playwright/own/chrome"
        self.launched: list[dict] = []

    def launch(self, **options):
        self.launched.append(options)


def test_a_path_is_launched_as_the_executable(chromium, tmp_path, monkeypatch):
    path = tmp_path / "chrome"
    path.touch()
    monkeypatch.setenv("CHROMIUM", str(path))
    recording = _RecordingPlaywright()
    chromium.launch(recording)
    (options,) = recording.launched
    assert options["executable_path"] == str(path)


def test_playwrights_own_build_is_launched_without_a_path(chromium, monkeypatch):
    monkeypatch.setenv("CHROMIUM", "playwright")
    recording = _RecordingPlaywright()
    chromium.launch(recording)
    (options,) = recording.launched
    assert "executable_path" not in options
    assert options["headless"] is True


def test_a_chromium_that_is_not_there_fails_rather_than_skips(chromium, tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(pytest.fail.Exception, match="does not exist"):
        chromium.launch(_RecordingPlaywright())
