"""The rating page in a real browser (Debian's headless chromium + chromium-driver, driven by selenium) against a
real server process: log in, play both replies, vote, reload, resume, lose the server (kill -9) mid-vote and submit
again after its restart; then the votes file, and the blinding of everything the browser received (HTML, JSON,
URLs and headers never name a model)."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import pytest
from listening_fixtures import SECRETS, built, serving
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from wavalign.listening.votes import read_votes

CHOICES = [  # what the rater clicks on each trial, in the order the page shows them
    {"helpfulness": "a", "naturalness": "tie", "overall": "b"},
    {"helpfulness": "b", "naturalness": "b", "overall": "b"},
    {"helpfulness": "tie", "naturalness": "a", "overall": "a"},
]


@pytest.fixture
def browser():
    chromium, driver_exe = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_exe, (
        "no chromium / chromedriver on PATH: run scripts/setup.sh (Debian: chromium, chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(driver_exe)
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd("Network.enable", {})
    try:
        yield driver
    finally:
        driver.quit()


def vote(driver, wait: WebDriverWait, choices: dict[str, str], sent: bool = True) -> str:
    """Play both replies to the end, answer every criterion, submit; the trial id voted on. sent=False: the server
    is down, so the page must keep the trial and say the vote was not saved."""
    trial = driver.execute_script("return current.id")
    submit = driver.find_element(By.ID, "submit")
    for criterion, value in choices.items():
        driver.find_element(By.CSS_SELECTOR, f'input[name="crit-{criterion}"][value="{value}"]').click()
    assert not submit.is_enabled()  # not before both replies were heard
    for side in ("a", "b"):
        driver.find_element(By.ID, f"play-{side}").click()
    wait.until(lambda d: d.find_element(By.ID, "heard-a").text == "heard" == d.find_element(By.ID, "heard-b").text)
    assert submit.is_enabled()
    submit.click()
    if not sent:
        wait.until(lambda d: "Not saved (server unreachable)" in d.find_element(By.ID, "status").text)
        assert driver.execute_script("return current.id") == trial and submit.is_enabled()
        return trial
    wait.until(lambda d: d.execute_script("return current.id") != trial or d.find_element(By.ID, "done").is_displayed())
    return trial


def network(driver) -> list[tuple[str, str, bytes]]:
    """(url, headers, body) of every response the page received (bodies of the non-audio ones)."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.responseReceived" or message["params"]["response"]["url"].startswith("data:"):
            continue  # (data:, is the browser's blank start page)
        response = message["params"]["response"]
        body = b""
        if "/audio/" not in response["url"]:
            got = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": message["params"]["requestId"]})
            body = got["body"].encode()
        out.append((response["url"], json.dumps(response.get("headers", {})), body))
    return out


def test_rate_reload_resume_and_blinding(tmp_path: Path, browser) -> None:
    session = built(tmp_path)
    wait = WebDriverWait(browser, 15)
    seen = []
    with serving(session.root) as (proc, url):
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
        browser.find_element(By.ID, "rater-input").send_keys("ann")
        browser.find_element(By.ID, "rater-go").click()
        wait.until(lambda d: d.find_element(By.ID, "progress").text == "Trial 1 of 3")
        assert browser.current_url.endswith("/?rater=ann")
        voted = [vote(browser, wait, CHOICES[0]), vote(browser, wait, CHOICES[1])]
        seen += network(browser)
        html = browser.page_source

        browser.refresh()  # stop and come back: the third trial, not the first
        wait.until(lambda d: d.find_element(By.ID, "progress").text == "Trial 3 of 3")
        remaining = browser.execute_script("return current.id")
        assert remaining not in voted and {remaining, *voted} == {t.id for t in session.trials}
        seen += network(browser)
        proc.send_signal(signal.SIGKILL)  # the server dies while the rater is listening
        proc.wait(timeout=10)
        voted.append(vote(browser, wait, CHOICES[2], sent=False))
    port = int(url.rsplit(":", 1)[1])
    with serving(session.root, port=port) as (_, url):  # restarted on the same address: submit again
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
        assert browser.find_element(By.ID, "status").text == ""
        seen += network(browser)

        browser.get(url + "/?rater=bob")  # another rater starts from the beginning
        wait.until(lambda d: d.find_element(By.ID, "progress").text == "Trial 1 of 3")
        seen += network(browser)
        html += browser.page_source

    votes = read_votes(session.root / "votes.jsonl", session)
    assert [(v.rater, v.trial, v.choices) for v in votes] == [("ann", t, c) for t, c in zip(voted, CHOICES)]
    audio = [u for u, _, _ in seen if "/audio/" in u]
    assert len(audio) >= 6 and all(re.search(r"/audio/[0-9a-f]{16}\.wav$", u) for u in audio)  # both sides, 3 trials
    assert any(u.endswith("/api/trials?rater=ann") for u, _, _ in seen)
    for secret in SECRETS:
        assert secret not in html
        for url_, headers, body in seen:
            assert secret not in url_ and secret not in headers and secret.encode() not in body, url_
    assert "system" not in html
