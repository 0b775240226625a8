"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium, offline.

Nothing is downloaded: the driver and the browser are the system's (``.ci/run`` installs them),
passed by path so Selenium Manager has nothing to fetch. Screenshots go to
``$ARENA_TEST_ARTIFACTS`` (default ``tests/output/``), which CI keeps as artifacts.

Example::

    with headless_chromium(tmp_path) as browser:
        browser.get("http://127.0.0.1:5000/debug")
        save_screenshot(browser, "debug-page.png")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from ops.compose import REPO

ARTIFACTS = Path(os.environ.get("ARENA_TEST_ARTIFACTS", REPO / "tests" / "output"))
#: The flags the brief asks for: no sandbox (root in CI), no GPU, no network of its own, a fresh profile.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


def chromium_paths() -> tuple[str, str]:
    """The browser and its driver, or an error that says how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise RuntimeError(
            "headless Chromium is needed for the /debug page test: apt-get install chromium chromium-driver "
            f"(found browser={browser}, driver={driver}); .ci/run installs both"
        )
    return browser, driver


@contextmanager
def headless_chromium(profile_dir: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile in ``profile_dir``; quits at the end."""
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def save_screenshot(browser: webdriver.Chrome, name: str) -> Path:
    """A PNG of the page under :data:`ARTIFACTS` (the caller prints the path for the CI log)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), f"chromium wrote no screenshot to {path}"
    return path


def read_inspector(
    browser: webdriver.Chrome, agent_url: str, agent_ids: list[str], timeout_s: float = 30
) -> dict[str, list[str]]:
    """Open ``/debug``, wait until every agent has a row, and return each agent's decision chips' tools.

    Also checks what escaping must guarantee: the page runs only its own script, and no
    injected one ran (``window.__pwned`` is what the tests' hostile names would set).
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{agent_url}/debug")

    def rows_for_all(driver: webdriver.Chrome) -> bool:
        shown = {
            row.find_element(By.CSS_SELECTOR, "td.agent").text
            for row in driver.find_elements(By.CSS_SELECTOR, "#rows tr")
        }
        return set(agent_ids) <= shown

    WebDriverWait(browser, timeout_s, poll_frequency=0.25).until(rows_for_all)
    assert browser.execute_script("return typeof window.__pwned") == "undefined", "an injected script ran"
    scripts = browser.execute_script("return Array.from(document.scripts).map(s => s.src)")
    assert scripts == [f"{agent_url}/debug/static/debug.js"], scripts
    chips: dict[str, list[str]] = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#rows tr"):
        agent = row.find_element(By.CSS_SELECTOR, "td.agent").text
        chips[agent] = [chip.get_attribute("data-tool") for chip in row.find_elements(By.CSS_SELECTOR, "button.chip")]
    return chips


def open_decision(browser: webdriver.Chrome, agent_id: str, timeout_s: float = 15) -> dict[str, str]:
    """Click the newest decision of ``agent_id``; return the detail pane's title, prompt and raw output as shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#rows tr")
        if r.find_element(By.CSS_SELECTOR, "td.agent").text == agent_id
    )
    chip = row.find_element(By.CSS_SELECTOR, "button.chip")
    trace_id = chip.get_attribute("data-trace-id")
    browser.execute_script("arguments[0].click()", chip)  # live refresh may redraw the row under a real click
    WebDriverWait(browser, timeout_s).until(
        lambda d: d.find_element(By.ID, "detail").get_attribute("data-trace-id") == trace_id
    )
    text = {
        name: browser.find_element(By.ID, f"detail-{name}").get_attribute("textContent")
        for name in ("title", "system", "prompt", "raw", "decision")
    }
    return text
