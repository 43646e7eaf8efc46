"""The web page in headless Chromium with a fake microphone fed from a WAV of real speech."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.asr.wer import normalize_english
from tests.e2e import live

pytestmark = pytest.mark.slow

COUNT_AUDIO_FRAMES = """
window.audioFramesSent = 0;
window.audioFramesAfterEof = 0;
window.eofSent = false;
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  if (typeof data !== "string") {
    window.audioFramesSent++;
    if (window.eofSent) window.audioFramesAfterEof++;
  } else if (JSON.parse(data).type === "eof") {
    window.eofSent = true;
  }
  return send.call(this, data);
};"""
# The audio worklet cannot load, after the microphone and the AudioContext were opened.
BREAK_THE_WORKLET = """
AudioWorklet.prototype.addModule = () => Promise.reject(new Error("no worklet here"));
const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (c) => (window.openedStream = await getUserMedia(c));
const Context = window.AudioContext;
window.AudioContext = class extends Context { constructor(...a) { super(...a); window.openedContext = this; } };"""

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CLIPS = ["lj-LJ001-0011"]


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = " and ".join(name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
                               if path is None)
        pytest.skip(f"the headless browser test needs {missing} on PATH (Debian: apt-get install chromium "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    audio, utterances = live.build_stream(CLIPS, pause_s=1.5, lead_s=1.0, tail_s=3.0)
    mic = tmp_path / "mic.wav"
    soundfile.write(mic, np.clip(audio, -1, 1), live.RATE, subtype="PCM_16")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1000",
                f"--use-file-for-fake-audio-capture={mic}", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver, utterances
    finally:
        driver.quit()


@pytest.mark.parametrize("with_key", [False, True], ids=["open", "with an API key"])
def test_page_shows_live_finals_and_file_results(stack, browser, tmp_path, stack_key, with_key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, utterances = browser
    driver.get(f"{stack.http}/ui/")
    if with_key:  # keys on (one exists): the page asks for one, keeps it in the tab, sends it everywhere
        secret = stack_key("web-page", "transcribe,read")
        driver.refresh()
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "key-form").is_displayed())
        assert driver.find_element(By.ID, "key-status").text == "This server needs an API key."
        driver.find_element(By.ID, "api-key").send_keys(secret)
        driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        WebDriverWait(driver, 10).until(lambda d: not d.find_element(By.ID, "key-form").is_displayed())
        assert driver.execute_script("return sessionStorage.getItem('voxbus-api-key')") == secret
        assert driver.execute_script("return localStorage.length") == 0
    # The page runs under the server's CSP: anything it blocks (the worklet, the WebSocket, a blob) is seen here.
    driver.execute_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                          "(e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "health").text == "ready")
    Select(driver.find_element(By.ID, "language")).select_by_value("en")
    driver.execute_script(COUNT_AUDIO_FRAMES)
    driver.find_element(By.ID, "mic").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#transcript p.final"))
    driver.find_element(By.ID, "mic").click()  # stop: eof, the last final, a clean close
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text == "Microphone off.")
    # The worklet makes a frame every 100 ms; the gateway's wait for the last final (a second or
    # more) would show any frame that went out after eof.
    sent = driver.execute_script("return [window.audioFramesSent, window.eofSent, window.audioFramesAfterEof]")
    assert sent[0] > 0 and sent[1] and sent[2] == 0, sent  # audio, then eof, then nothing
    finals = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#transcript p.final")]
    heard = normalize_english(" ".join(finals))
    for u in utterances:  # the looped file starts with this utterance
        words = normalize_english(u.reference).split()
        assert sum(w in heard for w in words) >= 0.6 * len(words), (u.reference, finals)

    jfk = live.EVAL_DIR / "asr/jfk/jfk.flac"
    driver.find_element(By.ID, "file").send_keys(str(jfk))
    driver.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
    WebDriverWait(driver, 60).until(lambda d: "transcribed" in d.find_element(By.ID, "upload-status").text)
    assert driver.find_element(By.ID, "progress").get_attribute("value") == "100"
    assert "fellow americans" in normalize_english(driver.find_element(By.ID, "transcript").text)

    srt = driver.execute_script("return render('srt')")
    vtt = driver.execute_script("return render('vtt')")
    txt = driver.execute_script("return render('txt')")
    assert srt.startswith("1\n00:00:0") and vtt.startswith("WEBVTT\n\n") and "country" in txt.lower()
    assert driver.execute_script("return window.cspViolations") == []
    if with_key:  # the history view asks the store with the key too (this session's finals are stored)
        driver.find_element(By.ID, "history-refresh").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history-streams li"))
        assert "unavailable" not in driver.find_element(By.ID, "history-status").text
    blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not blocked, blocked
    shot = tmp_path / "ui.png"
    driver.save_screenshot(str(shot))
    if os.environ.get("VOXBUS_SCREENSHOT_DIR"):  # for a person to look at
        shutil.copy(shot, Path(os.environ["VOXBUS_SCREENSHOT_DIR"]) / "voxbus-ui.png")


def test_a_failed_start_releases_the_microphone(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browser
    driver.get(f"{stack.http}/ui/")
    driver.execute_script(BREAK_THE_WORKLET)
    driver.find_element(By.ID, "mic").click()
    WebDriverWait(driver, 15).until(lambda d: "no worklet here" in d.find_element(By.ID, "status").text)
    assert driver.find_element(By.ID, "status").text == "Microphone unavailable: no worklet here"
    assert driver.execute_script("return window.openedStream.getTracks().every((t) => t.readyState === 'ended')")
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return window.openedContext.state") == "closed")
    assert driver.find_element(By.ID, "mic").text == "Start microphone"
