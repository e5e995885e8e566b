"""Reading the live status page (`agentfleet/operator/status.html`) in a real browser
driven by Selenium: the tests' shared helpers."""

from __future__ import annotations

import asyncio
import time

from selenium import webdriver
from selenium.webdriver.common.by import By

_CELL_TEXT = """
const shown = document.querySelector(arguments[0]);
return shown === null ? "" : shown.innerText.trim();
"""


def cell(chrome: webdriver.Chrome, stage: str, field: str) -> str:
    """The stage's `field` as the page shows it now ("" while it is not on the page).

    Found and read in one script run inside the page: the page re-renders its cards as
    events arrive, so an element found by one WebDriver call can be replaced before a
    second call reads it (a stale element reference)."""
    selector = f'[data-stage="{stage}"] [data-field="{field}"]'
    shown = chrome.execute_script(_CELL_TEXT, selector)
    return shown if isinstance(shown, str) else ""


async def wait_for_cell(
    chrome: webdriver.Chrome, stage: str, field: str, value: str, timeout: float
) -> float:
    """Seconds until the page shows `value` in the stage's `field` (the browser is
    polled every 50 ms); fails after `timeout`."""
    started = time.monotonic()
    while True:
        shown = await asyncio.to_thread(cell, chrome, stage, field)
        if shown == value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            console = await asyncio.to_thread(chrome.get_log, "browser")
            state = await asyncio.to_thread(lambda: chrome.find_element(By.TAG_NAME, "body").text)
            raise AssertionError(
                f"{stage} {field} shows {shown!r}, not {value!r}, after {timeout}s; the page "
                f"says {state!r}; its console: {console}"
            )
        await asyncio.sleep(0.05)
