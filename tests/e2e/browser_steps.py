"""What the browser test asks Chromium to do, run as its own process: selenium's driver plumbing (a child
process and polling sockets) does not get along with the eventlet monkey-patching the test process needs.

    python -m tests.e2e.browser_steps verify MODE BASE_URL HOLDER_NAME NUMBER SCREENSHOT.png [ORGANISATION PURPOSE]
    python -m tests.e2e.browser_steps open MODE URL SCREENSHOT.png

MODE ``nojs``: a desktop window with JavaScript switched off (the pages must not need it). MODE ``phone``: a
390-pixel-wide phone (JavaScript on: ChromeDriver's phone emulation cannot click with scripts off).

Prints one JSON object with what the page showed.
"""

from __future__ import annotations

import json
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


def driver(mode: str):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN",
                     "--window-size=1024,900"):
        options.add_argument(argument)
    if mode == "phone":  # 390 CSS pixels wide, an iPhone 14
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844,
                                                                              "pixelRatio": 2}})
    else:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    browser.set_page_load_timeout(30)
    return browser


def describe(browser, screenshot: str) -> dict:
    # a click does not always wait for the page it submits: wait for the answer to be there
    result = WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "result")))
    browser.save_screenshot(screenshot)
    return {"title": browser.title, "data_result": result.get_attribute("data-result"), "text": result.text,
            "page_source": browser.page_source,
            "html_width": browser.find_element(By.TAG_NAME, "html").size["width"],
            "main_width": browser.find_element(By.TAG_NAME, "main").size["width"]}


def verify(mode: str, base_url: str, holder_name: str, number: str, screenshot: str, organisation: str = "",
           purpose: str = "") -> dict:
    """``organisation`` and ``purpose``: who is checking and why, typed into the form's optional fields."""
    browser = driver(mode)
    try:
        browser.get(base_url + "/verify")
        browser.find_element(By.ID, "holder_name").send_keys(holder_name)
        browser.find_element(By.ID, "certificate_number").send_keys(number)
        for field, value in (("organisation", organisation), ("purpose", purpose)):
            if value:
                browser.find_element(By.ID, field).send_keys(value)
        button_width = browser.find_element(By.ID, "check").size["width"]
        browser.find_element(By.ID, "check").click()
        return {**describe(browser, screenshot), "button_width": button_width}
    finally:
        browser.quit()


def open_page(mode: str, url: str, screenshot: str) -> dict:
    browser = driver(mode)
    try:
        browser.get(url)
        return describe(browser, screenshot)
    finally:
        browser.quit()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    print(json.dumps({"verify": verify, "open": open_page}[command](*args), ensure_ascii=False))
