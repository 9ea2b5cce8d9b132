"""`dvc plots show` draws offline: its page asks no other host for anything and every chart it holds is drawn."""
import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).parent / "dvc"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("the plots page's browser test needs Chromium and its driver, not found here: "
                "apt-get install chromium chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="the plots page's browser test needs selenium")
from browser import headless_chromium, requested_urls  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    "The page `dvc plots show` writes for this checkout, served on 127.0.0.1."
    out = tmp_path_factory.mktemp("plots")
    run = subprocess.run([str(DVC), "plots", "show", "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert (out / "index.html").is_file(), run.stdout + run.stderr
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html", (out / "index.html").read_text()
    server.shutdown()


def test_plots_page_names_no_other_host(page):
    _, html = page
    assert "cdn." not in html and "https://" not in html, "the plots page loads something from the network"


def test_every_chart_draws_offline(page):
    url, _ = page
    driver = headless_chromium(CHROMIUM, CHROMEDRIVER)
    try:
        requested_urls(driver)
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
        sizes = driver.execute_script("return [...document.images].map(i => [i.src, i.naturalWidth, i.height])")
        away = [u for u in requested_urls(driver) if urlsplit(u).hostname not in ("127.0.0.1", None)]
    finally:
        driver.quit()
    assert sizes, "the plots page holds no chart"
    assert any("training-curves" in src for src, _, _ in sizes), sizes
    blank = [src for src, width, height in sizes if width == 0 or height == 0]
    assert not blank, f"charts that do not draw: {blank}"
    assert not away, f"the plots page asked another host for: {away}"
