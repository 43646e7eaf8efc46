"""The web page with Speakers ticked, in headless Chromium on the speaker stack: a file upload of the
primary clip shows each line's speaker label (two of them, each its own colour), and the VTT export carries voice tags."""
from __future__ import annotations

import pytest

from tests.e2e.test_web_page import browser  # noqa: F401  (the headless Chromium fixture)
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not diarization_available(),
                                 reason="../shared/eval/DIARIZATION.tsv is absent (diarization eval clips)")]


def test_page_shows_who_spoke(speaker_stack, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browser
    driver.get(f"{speaker_stack.http}/ui/")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "health").text == "ready")
    driver.find_element(By.ID, "speakers").click()
    clip = next(c for c in diarization_clips() if c.id == PRIMARY)
    driver.find_element(By.ID, "file").send_keys(str(clip.wav_path()))
    driver.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
    WebDriverWait(driver, 90).until(lambda d: "transcribed" in d.find_element(By.ID, "upload-status").text)
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#transcript p.final .speaker")]
    assert set(labels) == {"SPEAKER_1", "SPEAKER_2"}, labels
    colour = {e.text: e.value_of_css_property("background-color")
              for e in driver.find_elements(By.CSS_SELECTOR, "#transcript p.final .speaker")}
    assert colour["SPEAKER_1"] != colour["SPEAKER_2"], colour   # each speaker its own colour
    vtt = driver.execute_script("return render('vtt')")
    assert "<v SPEAKER_1>" in vtt and "<v SPEAKER_2>" in vtt, vtt
    driver.save_screenshot(str(tmp_path / "speakers.png"))
