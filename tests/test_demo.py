"""`chimle-demo` in a real headless Chromium: samples, the interpolation slider, the Fig. 9 view (cleared when the input
changes), the closest sample beside its reference, a hint (not an error) before an upload, bad uploads; every request
the page makes stays on 127.0.0.1. Screenshots go to each test's tmp_path."""
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXE = Path(sys.executable).with_name("chimle-demo")
INSTALL = "apt-get install chromium chromium-driver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(f"the demo's browser tests need Chromium and its driver, not found here: {INSTALL}",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="the demo's browser tests need selenium: pip install selenium")
from browser import headless_chromium, requested_urls  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from chimle.demo import examples  # noqa: E402
from chimle.fetch import embedded_photo_path  # noqa: E402

WAIT_S = 180    # the longest a step may take on a busy 2-core machine before the test fails
REQUESTS = []   # every URL the browser asked for, across the tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "The demo on a free port (the released models), stopped at the end."
    tmp, port = tmp_path_factory.mktemp("demo"), _free_port()
    log = open(tmp / "server.log", "w")
    env = os.environ | {"GRADIO_TEMP_DIR": str(tmp / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([str(EXE), "--port", str(port), "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    url = f"http://127.0.0.1:{port}/"

    def up(_):
        assert proc.poll() is None, (f"chimle-demo exited with {proc.returncode}:\n"
                                     f"{(tmp / 'server.log').read_text()[-3000:]}")
        try: return urllib.request.urlopen(url, timeout=5).status == 200
        except OSError: return False
    try:
        WebDriverWait(None, WAIT_S, poll_frequency=0.5).until(up, f"the demo did not answer on {url}")
        yield {"url": url, "proc": proc, "log": tmp / "server.log"}
    finally:
        proc.terminate()
        try: proc.wait(30)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(CHROMIUM, CHROMEDRIVER)
    yield driver
    driver.quit()


class Page:
    "The demo page in the browser, with explicit waits."
    def __init__(self, driver, server, shots: Path):
        self.d, self.server, self.shots = driver, server, shots
        self.wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.1,  # the page re-renders as results arrive
                                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def el(self, css): return self.d.find_element(By.CSS_SELECTOR, css)
    def text(self, css): return self.el(css).text
    def until(self, check, what): return self.wait.until(lambda d: check(), f"waited {WAIT_S} s for {what}")
    def shot(self, name): self.d.save_screenshot(str(self.shots / f"{name}.png"))

    def click(self, css):
        el = self.el(css)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        el.click()

    def status_says(self, words, css="#status"):
        self.until(lambda: words in self.text(css), f"{words!r} in {css}")

    def choose(self, task, source="chelsea"):
        self.click(f"#task input[value={task}]")
        self.status_says(f"{task}-chimle")
        if source: self.click(f"#source input[value={source}]"); self.status_says(f"{source}.png")

    def type_into(self, css, value):
        self.until(lambda: any(b.is_displayed() for b in self.d.find_elements(By.CSS_SELECTOR, css)), f"{css} to show")
        box = self.el(css)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        box.clear(); box.send_keys(str(value)); box.send_keys("\t")

    def upload(self, css, path):
        if self.d.find_elements(By.CSS_SELECTOR, f"{css} button[aria-label=Clear]"):
            self.click(f"{css} button[aria-label=Clear]")
        self.el(f"{css} input[type=file]").send_keys(str(path))

    def gallery(self) -> list:
        return [(img.get_attribute("alt"), img.get_attribute("src"))
                for img in self.d.find_elements(By.CSS_SELECTOR, "#samples img")]

    def draw(self, n):
        "Draw `n` samples; returns the gallery's (caption, image address) once all have appeared."
        old = self.gallery()
        self.type_into("#n input[type=number]", n)
        self.click("#draw")
        self.until(lambda: self.gallery() != old and sum(c.startswith("sample") for c, _ in self.gallery()) == n,
                   f"{n} samples in the gallery")
        return self.gallery()

    def error_says(self, words):
        self.until(lambda: any(words in t.text
                               for t in self.d.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")),
                   f"an error message saying {words!r}")


@pytest.fixture
def page(browser, server, tmp_path):
    browser.get(server["url"])
    p = Page(browser, server, tmp_path)
    p.status_says("takes it")  # the page has loaded and shown the first example as the model takes it
    yield p
    REQUESTS.extend(requested_urls(browser))


def _image(url) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def test_samples_with_input_ground_truth_and_download(page):
    page.choose("dc")
    items = page.draw(5)
    page.shot("samples")
    assert [c for c, _ in items] == ["input"] + [f"sample {k}" for k in range(1, 6)] + ["ground truth"]
    assert "5 samples of" in page.text("#status") and "seed 0" in page.text("#status")
    truth = np.asarray(Image.open(examples("dc")["chelsea"][1]).convert("RGB"))
    assert np.array_equal(_image(items[-1][1]), truth)
    link = page.el("#download a[download]")
    assert link.get_attribute("download") == "chelsea_samples.zip"
    with (urllib.request.urlopen(link.get_attribute("href"), timeout=30) as r,
          zipfile.ZipFile(io.BytesIO(r.read())) as z):
        assert z.namelist() == [f"chelsea_{k:03d}.png" for k in range(5)] + ["chelsea_grid.png"]
        assert np.array_equal(np.asarray(Image.open(z.open("chelsea_002.png")).convert("RGB")), _image(items[3][1]))


def test_upload_of_any_size_says_what_was_resized(page, tmp_path):
    photo = tmp_path / "flower.jpg"
    shutil.copy(embedded_photo_path("flower"), photo)  # 640x427
    page.choose("dc", source=None)
    page.click("#options .label-wrap")  # open the options
    page.type_into("#max-side input", 64)
    page.upload("#upload", photo)
    page.status_says("flower.jpg: 640x427 -> 64x43 (longer side limited to max_side 64, reduced as it was read)")
    page.status_says("flower.jpg: 64x43 -> 64x40 (centre-cropped to multiples of 8 px)")
    items = page.draw(2)
    assert [c for c, _ in items] == ["input", "sample 1", "sample 2"]  # no ground truth for an upload
    assert _image(items[1][1]).shape == (40, 64, 3)
    page.choose("sr", source=None)
    page.status_says("flower.jpg: super-resolution input is 427 px; resized to the model's 8 px")
    page.shot("resized")


def test_interpolation_slider(page):
    page.choose("col", "flower")
    items = page.draw(3)
    page.until(lambda: page.d.find_elements(By.CSS_SELECTOR, "#path-image img"), "the path's first output")
    start = page.el("#path-image img").get_attribute("src")
    assert np.abs(_image(start).astype(int) - _image(items[1][1])).max() <= 1  # position 0: sample 1
    rng = page.el("#path-t input[type=range]")
    page.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", rng)
    ActionChains(page.d).click_and_hold(rng).move_by_offset(rng.size["width"] // 2 + 10, 0).release().perform()
    page.until(lambda: page.el("#path-t input[type=number]").get_attribute("value") == "1", "the slider at the end")
    page.until(lambda: page.el("#path-image img").get_attribute("src") != start, "the output at the end of the path")
    end = page.el("#path-image img").get_attribute("src")
    assert np.abs(_image(end).astype(int) - _image(items[2][1])).max() <= 1  # position 1: sample 2
    page.shot("interpolation")


def test_global_and_spatial_code_view(page):
    page.choose("n2d")
    page.click("#codes")
    page.until(lambda: page.d.find_elements(By.CSS_SELECTOR, "#codes-image img"), "the Fig. 9 view")
    page.status_says("differ only in the global code", "#codes-text")
    assert "differ only in the spatial code" in page.text("#codes-text")
    rows = _image(page.el("#codes-image img").get_attribute("src"))
    assert rows.shape[0] > 4 * 64 and rows.shape[1] > 6 * 64  # 4 rows of 6 outputs of 64 px
    page.shot("codes")
    for switch in ("#source input[value=flower]", "#task input[value=dc]"):  # another example, another task
        page.click(switch)
        page.until(lambda: not page.d.find_elements(By.CSS_SELECTOR, "#codes-image img")
                   and not page.text("#codes-text").strip(), f"the Fig. 9 view cleared after {switch}")
        page.click("#codes")
        page.status_says("differ only in the global code", "#codes-text")
    page.shot("codes-after-switch")


def test_benchmark_view_shows_true_modes_beside_each_methods_samples(page):
    "The exactly known benchmarks: the mode_forcing stage's samples beside the true modes, another input on request."
    from chimle.demo import BENCHMARK_GALLERY
    assert BENCHMARK_GALLERY.is_file(), f"{BENCHMARK_GALLERY} (a committed output of the mode_forcing stage) is missing"
    page.until(lambda: page.d.find_elements(By.CSS_SELECTOR, "#bench-image img"), "the benchmark view")
    page.status_says("Frequency of each mode", "#bench-text")
    assert "truth" in page.text("#bench-text") and "chimle" in page.text("#bench-text")
    first = page.el("#bench-image img").get_attribute("src")
    view = _image(first)
    assert view.shape[0] > 300 and view.shape[1] > 300, view.shape
    page.type_into("#bench-input input[type=number]", "3")
    page.until(lambda: page.el("#bench-image img").get_attribute("src") != first, "the view of test input 3")
    page.shot("benchmarks")


# Records every progress text the closest-sample output shows, however briefly (the search may be quick).
WATCH_PROGRESS = """
window.progressShown = [];
const box = document.getElementById("closest-image");
new MutationObserver(() => window.progressShown.push(box.innerText))
  .observe(box, {subtree: true, childList: true, characterData: true});
"""


def test_closest_sample_to_a_reference_shows_progress(page, tmp_path):
    ref = tmp_path / "reference.png"
    Image.open(examples("dc")["flower"][1]).save(ref)
    page.choose("dc")
    page.upload("#reference", ref)
    page.type_into("#ivo-steps input", 10)
    page.d.execute_script(WATCH_PROGRESS)
    page.click("#closest")
    page.shot("closest-progress")
    page.status_says("The output closest to reference.png: MSE x1e3", "#closest-text")
    shown = page.d.execute_script("return window.progressShown")
    assert any("random start" in t and "of 5" in t for t in shown), shown
    assert "5 random starts of 10 Adam steps" in page.text("#closest-text")
    assert page.d.find_elements(By.CSS_SELECTOR, "#closest-image img")
    shown = _image(page.el("#closest-reference img").get_attribute("src"))  # the reference, beside the output
    assert np.array_equal(shown, np.asarray(Image.open(ref).convert("RGB")))  # 64 px, as the output: as it is
    page.shot("closest")
    page.click("#source input[value=flower]")  # another input: its closest sample is not found yet
    page.until(lambda: not page.d.find_elements(By.CSS_SELECTOR, "#closest-image img, #closest-reference img"),
               "the closest sample and its reference cleared")


def test_choosing_your_photo_before_uploading_it_shows_a_hint(page, tmp_path):
    "The natural order (choose 'your photo', then upload it) meets a hint in the status, not an error, on every task."
    page.click("#source input[value=upload]")
    page.status_says("Upload your photo below")
    page.click("#task input[value=col]")  # another task keeps the upload chosen: the hint again
    page.until(lambda: page.el("#model input").get_attribute("value") == "col-chimle", "the col models")
    page.status_says("Upload your photo below")
    time.sleep(1)  # an error would have arrived by now
    assert not page.d.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")
    page.shot("hint")
    photo = tmp_path / "flower.jpg"
    shutil.copy(embedded_photo_path("flower"), photo)
    page.upload("#upload", photo)
    page.status_says("takes it: 256x168 px")  # 640x427, reduced to the default max side (256)
    assert "flower.jpg: 640x427 -> 256x171" in page.text("#status")
    assert "Upload your photo" not in page.text("#status")  # the hint is gone with the upload


def test_bad_uploads_show_a_message_and_the_server_goes_on(page, tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    page.upload("#upload", tmp_path / "notes.png")
    page.error_says("notes.png: not an image file Pillow can identify")
    page.shot("bad-upload")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(embedded_photo_path("flower").read_bytes()[:3000])
    page.upload("#upload", cut)
    page.error_says("cut.jpg: truncated or corrupt image data")
    assert "Traceback" not in page.d.find_element(By.TAG_NAME, "body").text
    assert page.server["proc"].poll() is None
    page.click("#source input[value=chelsea]")  # back to an example: the page and the server still work
    page.status_says("chelsea.png")
    page.choose("dc", source=None)
    assert len(page.draw(2)) == 4  # input, 2 samples, ground truth


def test_no_request_leaves_the_machine(page):
    asked = REQUESTS + requested_urls(page.d)
    assert any(u.startswith(page.server["url"]) for u in asked)
    away = sorted({u for u in asked if not u.startswith(("http://127.0.0.1:", "data:", "blob:"))})
    assert not away, "requests that leave 127.0.0.1: " + ", ".join(away)
