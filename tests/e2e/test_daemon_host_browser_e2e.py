"""End to end in a real browser against the daemon: headless chromium (Selenium), ``sscard run``
with ``[host]`` enabled as a child process, pcscd with vpcd and emulated cards (issue 14's
"done when": the example HIS page reads a card through the daemon, a foreign-origin page is
refused, the console completes a hotel check-in). The browser, the page servers and the page
reading helper are those of ``test_host_browser_e2e`` (which skips without chromium).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_host_browser_e2e as in_browser
from daemon_support import DaemonProcess, TerminalFolder, make_terminal
from host_support import start_daemon_host
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from support import make_card, persona_path

pytestmark = pytest.mark.e2e
_read_with_page = in_browser._read_with_page
pages = in_browser.pages  # the fixtures of the standalone API's browser tests
browser = in_browser.browser


@pytest.fixture
def terminal(tmp_path: Path, pcscd) -> TerminalFolder:
    return make_terminal(tmp_path)


@pytest.fixture
def hall(terminal: TerminalFolder, pages: tuple[str, str]) -> Iterator[str]:
    daemon, base = start_daemon_host(terminal, "service-hall", origins=(pages[0],))
    try:
        yield base
    finally:
        daemon.close()


@pytest.fixture
def hotel(terminal: TerminalFolder) -> Iterator[tuple[DaemonProcess, str]]:
    daemon, base = start_daemon_host(terminal, "hotel")
    try:
        yield daemon, base
    finally:
        daemon.close()


def test_his_page_reads_the_card_through_the_daemon_and_a_foreign_page_cannot(
    browser,
    pages,
    hall: str,
    terminal: TerminalFolder,
    cards,
) -> None:
    person = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    cards.insert(make_card("elderly", t0=True))
    shots = terminal.folder
    text = _read_with_page(browser, pages[0], hall, shots / "his-daemon.png")
    assert person["holder"]["name"] in text and person["card"]["card_number"] in text
    assert _read_with_page(browser, pages[1], hall, shots / "foreign-daemon.png") == ""
    shown = browser.find_element(By.ID, "result").text
    assert "read failed" in shown and person["holder"]["name"] not in shown
    assert [row[2:] for row in terminal.rows()] == [("accept", "ok")]  # decided once


def test_console_completes_a_hotel_checkin_through_the_daemon(
    browser, hotel: tuple[DaemonProcess, str], terminal: TerminalFolder, cards,
    tmp_path: Path,
) -> None:  # fmt: skip
    daemon, base = hotel
    person = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    browser.get(base + "/console/")
    room = browser.find_element(By.ID, "room")
    cards.insert(make_card("elderly", t0=True))  # the guest's card waits for the clerk
    daemon.wait_state("waiting_removal")
    room.send_keys("1208", Keys.ENTER)
    prompt = browser.find_element(By.ID, "prompt")
    WebDriverWait(browser, 30).until(lambda _d: prompt.get_attribute("data-outcome"))
    browser.save_screenshot(str(tmp_path / "console-daemon.png"))
    assert prompt.get_attribute("data-outcome") == "accept", prompt.text
    shown = {
        dd.get_attribute("data-field"): dd.text
        for dd in browser.find_elements(By.CSS_SELECTOR, "#fields dd")
    }
    assert shown["room"] == "1208" and shown["name"] != person["holder"]["name"]
    assert person["holder"]["ssn"] not in browser.page_source
    WebDriverWait(browser, 10).until(lambda d: "decision" in d.find_element(By.ID, "event").text)
    assert [(r[1], r[2]) for r in terminal.rows()] == [("hotel", "accept")]
    assert browser.find_element(By.ID, "pin").get_attribute("type") == "password"
    assert (tmp_path / "console-daemon.png").stat().st_size > 0
