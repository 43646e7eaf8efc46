"""The web page's history view in headless Chromium: streams, search with highlighted hits (a transcript
with HTML in it shows as text), export of a stream in every format."""
from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from bus import schemas
from tests.e2e.test_web_page import browser  # noqa: F401  (the headless Chromium fixture)
from tests.kit import BusClient, wait_for

pytestmark = pytest.mark.slow

STREAM = "history-e2e"
TEXTS = ['Tags <img src=x onerror="window.pwned=1"> & <b>bold</b> voxbusword', "Another voxbusword line"]
FETCH = "return fetch(arguments[0]).then((r) => r.text())"   # selenium's execute_script awaits the promise


def _publish_finals(stack) -> None:
    """Two finals of a producer of the test's own, published until the store has both (a fresh PUB's
    first messages may go before its connection is up)."""
    bus = BusClient(stack.run_dir, prefixes=[])
    now = time.time()
    finals = [schemas.Final(utt=i, text=t, start=2.0 * i, end=2.0 * i + 1.5, stream=STREAM, worker="e2e-history",
                            seq=i + 1, ts=now + i, segments=[{"start": 2.0 * i, "end": 2.0 * i + 1.5, "text": t}],
                            language="en") for i, t in enumerate(TEXTS)]

    def stored() -> bool:
        for final in finals:
            bus.publish(final)
        reply = httpx.get(f"{stack.http}/v1/transcripts", params={"stream": STREAM}, timeout=10)
        return reply.status_code == 200 and len(reply.json()["transcripts"]) == len(TEXTS)
    try:
        wait_for(stored, 30, 0.2, "the history test's finals in the store")
    finally:
        bus.close()


def test_history_lists_streams_highlights_hits_as_text_and_exports(stack, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _publish_finals(stack)
    driver, _ = browser
    driver.get(f"{stack.http}/ui/")
    wait = WebDriverWait(driver, 20)
    stream = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#history-streams li[data-stream="{STREAM}"]'))[0]
    assert "2 finals" in stream.text
    stream.find_element(By.TAG_NAME, "button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-results li")) == 2)

    search = driver.find_element(By.ID, "history-q")
    search.send_keys("bold")
    driver.find_element(By.CSS_SELECTOR, "#history-search button[type=submit]").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-results li")) == 1)
    hit = driver.find_element(By.CSS_SELECTOR, "#history-results li .text")
    assert hit.text == TEXTS[0]   # the tags are text, not markup
    assert [m.text for m in hit.find_elements(By.TAG_NAME, "mark")] == ["bold"]
    assert not driver.find_elements(By.CSS_SELECTOR, "#history-results img, #history-results b")
    assert driver.execute_script("return window.pwned") is None

    search.clear()
    search.send_keys("voxbus*")
    driver.find_element(By.CSS_SELECTOR, "#history-search button[type=submit]").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-results li mark")) == 2)
    assert [m.text for m in driver.find_elements(By.CSS_SELECTOR, "#history-results mark")] == ["voxbusword"] * 2

    links = {a.get_attribute("data-format"): a.get_attribute("href")
             for a in driver.find_elements(By.CSS_SELECTOR, "#history-export a.export")}
    assert sorted(links) == ["json", "srt", "txt", "vtt"]
    srt = driver.execute_script(FETCH, links["srt"])
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nTags <img") and "2\n00:00:02,000" in srt, srt
    assert driver.execute_script(FETCH, links["vtt"]).startswith("WEBVTT")
    assert driver.execute_script(FETCH, links["txt"]).split() == " ".join(TEXTS).split()
    assert [t["text"] for t in json.loads(driver.execute_script(FETCH, links["json"]))["transcripts"]] == TEXTS
    if os.environ.get("VOXBUS_SCREENSHOT_DIR"):   # for a person to look at
        driver.find_element(By.ID, "history").screenshot(os.path.join(os.environ["VOXBUS_SCREENSHOT_DIR"],
                                                                      "voxbus-history.png"))
