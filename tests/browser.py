"""The headless Chromium of the browser tests (test_demo.py, test_docs.py): offline, every request logged."""
import json

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")  # a name lookup fails: offline here too


def headless_chromium(binary: str, driver: str) -> webdriver.Chrome:
    "A headless Chromium (`binary`, through the chromedriver at `driver`) that logs the network events of its pages."
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in FLAGS: opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the network events, to list every request
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def requested_urls(driver) -> list:
    "The URLs the browser asked for since the last call (Network.requestWillBeSent events)."
    events = (json.loads(e["message"])["message"] for e in driver.get_log("performance"))
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
