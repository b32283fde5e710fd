"""End to end in a real browser: headless chromium (Selenium) against ``sscard host serve``.

The example HIS page (examples/his.html, using clients/sscard.js) is served from an allowed
origin and reads the emulated card; the same page from a foreign origin is refused by the API.
Skipped only when chromium is absent and ``SSCARD_TEST_BROWSER`` is not ``required``.
"""

from __future__ import annotations

import functools
import http.server
import logging
import os
import shutil
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_support import serve_host
from support import make_card, persona_path

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER) and os.environ.get("SSCARD_TEST_BROWSER") != "required":
    pytest.skip(
        "chromium and chromium-driver are not installed (scripts/install-system-deps.sh)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# selenium logs each WebDriver answer at DEBUG, page text included (the holder's name as the
# page shows it): the privacy check over every log line would rightly flag it
logging.getLogger("selenium").setLevel(logging.INFO)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[str, str]]:
    """The repository served twice on loopback: the allowed origin and a foreign one."""
    handler = functools.partial(_Quiet, directory=str(ROOT))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, name="pages") for s in servers]
    for t in threads:
        t.start()
    try:
        yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    finally:
        for s, t in zip(servers, threads, strict=True):
            s.shutdown()
            s.server_close()
            t.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(DRIVER or "chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, pages: tuple[str, str], pcscd) -> Iterator[str]:
    yield from serve_host(tmp_path_factory.mktemp("host-browser"), "--origin", pages[0])


def _read_with_page(browser: webdriver.Chrome, page: str, api: str, shot: Path) -> str:
    browser.get(page + "/examples/his.html")
    base = browser.find_element(By.ID, "base")
    base.clear()
    base.send_keys(api)
    browser.find_element(By.ID, "read").click()
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, 20).until(lambda _d: result.get_attribute("data-ok") is not None)
    browser.save_screenshot(str(shot))
    return result.text if result.get_attribute("data-ok") == "true" else ""


def test_his_page_reads_the_card(browser, pages, api, cards, tmp_path: Path) -> None:
    holder = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    cards.insert(make_card("elderly"))
    text = _read_with_page(browser, pages[0], api, tmp_path / "his.png")
    assert holder["card"]["card_number"] in text
    assert holder["holder"]["name"] in text
    assert (tmp_path / "his.png").stat().st_size > 0


def test_foreign_origin_page_is_refused(browser, pages, api, cards, tmp_path: Path) -> None:
    holder = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    cards.insert(make_card("elderly"))
    assert _read_with_page(browser, pages[1], api, tmp_path / "foreign.png") == ""
    shown = browser.find_element(By.ID, "result").text
    assert "read failed" in shown
    assert holder["holder"]["name"] not in shown


def test_console_completes_a_hotel_checkin(browser, api, cards, tmp_path: Path) -> None:
    holder = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    browser.get(api + "/console/")
    room = browser.find_element(By.ID, "room")
    assert browser.switch_to.active_element == room  # keyboard first: the room has the focus
    cards.insert(make_card("elderly"))
    room.send_keys("1208", Keys.ENTER)
    prompt = browser.find_element(By.ID, "prompt")
    WebDriverWait(browser, 20).until(lambda _d: prompt.get_attribute("data-outcome"))
    browser.save_screenshot(str(tmp_path / "console.png"))
    assert prompt.get_attribute("data-outcome") == "accept", prompt.text
    assert prompt.text == "验证通过"
    shown = {
        dd.get_attribute("data-field"): dd.text
        for dd in browser.find_elements(By.CSS_SELECTOR, "#fields dd")
    }
    assert shown["room"] == "1208"
    name, ssn = holder["holder"]["name"], holder["holder"]["ssn"]
    assert shown["name"] != name and shown["name"][0] == name[0]
    assert ssn not in browser.page_source and name not in browser.page_source
    WebDriverWait(browser, 5).until(lambda d: "decision" in d.find_element(By.ID, "event").text)
    browser.find_element(By.ID, "lang").send_keys(Keys.ENTER)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.ID, "register").text == "Insert card and register"
    assert (tmp_path / "console.png").stat().st_size > 0
