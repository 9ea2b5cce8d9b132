"""The documentation site (`make docs`, mkdocs.yml) in a real headless Chromium: built from the notebooks as committed
(nothing run), served on 127.0.0.1, its index lists every notebook, a notebook's page shows its prose, its stored
outputs (a table, an image) and its module's API with nbdev's per-parameter comments, and no page asks for anything
from another host."""
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
for mod in ("mkdocs", "material", "mkdocstrings_handlers.python", "latex2mathml"):
    pytest.importorskip(mod, reason="the docs site needs its packages (the `docs` extra, part of `dev`): "
                                    "pip install -c constraints.txt -e '.[docs]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("the docs site's browser test needs Chromium and its driver, not found here: "
                "apt-get install chromium chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="the docs site's browser test needs selenium: pip install selenium")
from browser import headless_chromium, requested_urls  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BUILD_S = 300   # the most a build may take on a busy 2-core machine (about 30 s when it has them to itself)
LOCAL = {"127.0.0.1", "localhost"}


def _notebook(stem):
    return json.loads((ROOT / "nbs" / f"{stem}.ipynb").read_text(encoding="utf-8"))


def _title(stem):
    "The notebook's first Markdown heading: its page's title."
    for c in _notebook(stem)["cells"]:
        if c["cell_type"] == "markdown":
            for line in "".join(c["source"]).splitlines():
                if line.startswith("# "): return line[2:].strip()
    return stem


def _with_output(mimes):
    "The first library notebook that holds a stored output of one of these kinds."
    for p in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(p.read_text(encoding="utf-8"))["cells"]
        if any(mimes & o.get("data", {}).keys() for c in cells for o in c.get("outputs", [])): return p.stem
    pytest.fail(f"no notebook in nbs/ holds a stored {' or '.join(sorted(mimes))} output")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The site built as `make docs` builds it, into a temporary folder, and served on a free port of 127.0.0.1."
    out = tmp_path_factory.mktemp("docs") / "site"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--clean", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=BUILD_S,
                       env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, f"mkdocs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    print(f"site built in {time.monotonic() - t0:.1f} s")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"dir": out, "url": f"http://127.0.0.1:{server.server_address[1]}/"}
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(CHROMIUM, CHROMEDRIVER)
    yield driver
    driver.quit()


@pytest.fixture
def visit(browser, site):
    "Open a page of the site and wait until it and its images have loaded; every request must stay on 127.0.0.1."
    requested_urls(browser)  # drop earlier pages' events

    def go(page):
        browser.get(site["url"] + page)
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
        time.sleep(0.3)  # the theme's scripts (search worker) start right after the load
        urls = requested_urls(browser)
        assert any(u.startswith(site["url"] + page) for u in urls), f"{page} was not requested: {urls[:5]}"
        away = [u for u in urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).hostname not in LOCAL]
        assert not away, f"{page} asked another host for: {away}"
        return browser
    return go


def test_index_lists_every_notebook_the_readme_and_the_report(visit):
    d = visit("index.html")
    assert "chimle" in d.title and d.find_element(By.TAG_NAME, "h1").text == "chimle"
    links = {a.get_attribute("href").rsplit("/", 1)[-1] for a in d.find_elements(By.CSS_SELECTOR, "article a[href]")}
    stems = [p.stem for p in sorted((ROOT / "nbs").glob("*.ipynb"))]
    assert stems and not [s for s in stems
                          if f"{s}.html" not in links], f"the index misses notebooks; it links {sorted(links)}"
    assert "readme.html" in links
    reports = sorted(ROOT.glob("runs/*/report/report.md"))
    assert all(f"report-{p.parents[1].name}.html" in links for p in reports)
    assert not any(f"{p.stem}.html" in links for p in (ROOT / "nbs" / "exp").glob("*.ipynb"))  # listed, no pages


def test_notebook_page_has_prose_code_and_its_module_api(visit):
    d = visit("02_tim.html")
    assert d.find_element(By.TAG_NAME, "h1").text == _title("02_tim")
    assert "chimle.tim" in d.find_element(By.CSS_SELECTOR, ".nb-origin").text
    assert d.find_elements(By.CSS_SELECTOR, "article .highlight code"), "no code on the page"
    entry = d.find_element(By.ID, "chimle.tim.build_tim")  # the API entry: heading, signature, docstring
    assert "build_tim" in entry.text
    doc = entry.find_element(By.XPATH, "..")
    assert "build_tim(" in doc.find_element(By.CSS_SELECTOR, ".doc-signature").text
    assert "TIM for" in doc.find_element(By.CSS_SELECTOR, ".doc-contents").text


def test_api_shows_the_parameters_comments_and_a_stored_table(visit):
    d = visit("03_distance.html")
    assert d.find_element(By.TAG_NAME, "h1").text == _title("03_distance")
    doc = d.find_element(By.ID, "chimle.distance.build_distance").find_element(By.XPATH, "..")
    rows = {r.find_element(By.TAG_NAME, "code").text: r.text
            for r in doc.find_elements(By.CSS_SELECTOR, "tr.doc-section-item")}
    assert "backbone" in rows and "one of BACKBONES" in rows["backbone"], rows  # nbdev's docments: the trailing comment
    tables = d.find_elements(By.CSS_SELECTOR, ".nb-output table")
    assert tables and tables[0].find_elements(By.TAG_NAME, "td"), "the stored DataFrame output is missing"


def test_stored_image_output_is_shown(visit):
    stem = _with_output({"image/png", "image/jpeg"})
    d = visit(f"{stem}.html")
    assert d.find_element(By.TAG_NAME, "h1").text == _title(stem)
    imgs = d.find_elements(By.CSS_SELECTOR, ".nb-output img.nb-image")
    assert imgs and all(d.execute_script("return arguments[0].naturalWidth", i) > 0 for i in imgs), \
        f"{stem}: stored images missing or not loaded"


def test_readme_page(visit, site):
    d = visit("readme.html")
    assert d.find_element(By.TAG_NAME, "h1").text == "chimle"
    assert all(d.execute_script("return arguments[0].naturalWidth", i) > 0
               for i in d.find_elements(By.CSS_SELECTOR, "article img"))
    assert (site["dir"] / "search" / "search_index.json").exists()
