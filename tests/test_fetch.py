"""Fetching against a real HTTP server on 127.0.0.1 started here: clean, interrupted and resumed, wrong
checksum, server errors, unreachable host, malicious archives, each paper source end to end on tiny files, and the
embedded photos of Debian packages (installed from packages made here)."""
import csv
import gzip
import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from skimage import data as skdata

from chimle.config import load_params, repo_path
from chimle.data import prepare_task
from chimle.fetch import (
    EMBEDDED_PHOTOS,
    ArchiveLimitError,
    ArchiveReadError,
    ChecksumError,
    FetchError,
    Photo,
    UnsafeArchiveError,
    download,
    embedded_photo_path,
    fetch_embedded,
    fetch_task,
    install_photos,
    load_download_manifest,
    safe_extract,
    sha256_file,
)
from chimle.files import read_yaml

FAST = dict(timeout=5, retries=3, backoff=0.01)


class _Server:
    """Serves `files` (path -> bytes) with Range support; `modes[path]` (space-separated flags) makes it misbehave:
    'truncate_once' (first response cut in half), 'error' (always 500), 'error_twice' (500 twice, then fine),
    'norange' (ignores Range), 'missing' (404), 'wrong_range' (answers a Range request with bytes from another
    offset), 'short_range' (answers a Range request with at most 10,000 bytes), 'nolength' (no Content-Length),
    'drip' (1,000 bytes every 0.05 s). `types[path]` is sent as Content-Type."""

    def __init__(self):
        self.files, self.modes, self.types, self.log, self.count = {}, {}, {}, [], {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a): pass

            def do_GET(self):
                path, rng = self.path, self.headers.get("Range")
                server.log.append((path, rng))
                n = server.count[path] = server.count.get(path, 0) + 1
                flags = set(server.modes.get(path, "ok").split())
                if path not in server.files or "missing" in flags: return self.send_error(404)
                if "error" in flags or ("error_twice" in flags and n <= 2): return self.send_error(500)
                data, start, end = server.files[path], 0, len(server.files[path])
                if rng and "norange" not in flags:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416); self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0"); self.end_headers(); return
                    if "wrong_range" in flags: start = min(start + 1000, len(data) - 1)
                    if "short_range" in flags: end = min(start + 10_000, len(data))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:end]
                if path in server.types: self.send_header("Content-Type", server.types[path])
                if "nolength" not in flags: self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if "truncate_once" in flags and n == 1:
                        self.wfile.write(body[:len(body) // 2]); self.wfile.flush(); self.close_connection = True
                        return
                    if "drip" in flags:
                        for i in range(0, len(body), 1000):
                            self.wfile.write(body[i:i + 1000]); self.wfile.flush(); time.sleep(0.05)
                        return
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError): pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add(self, path, data, mode="ok", ctype=None):
        self.files[path] = data; self.modes[path] = mode
        if ctype: self.types[path] = ctype
        return self.url + path


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown(); s.httpd.server_close()


def _blob(n=300_000, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(b): return hashlib.sha256(b).hexdigest()


# ---- downloads -----------------------------------------------------------------------------------------------
def test_clean_download_verifies_and_records(server, tmp_path):
    data = _blob()
    url = server.add("/a.bin", data)
    out = download(url, tmp_path / "a.bin", sha256=_sha(data), **FAST)
    assert out.read_bytes() == data
    assert load_download_manifest(tmp_path)[url]["sha256"] == _sha(data)
    assert not (tmp_path / "a.bin.part").exists()
    download(url, tmp_path / "a.bin", **FAST)  # present and verified by the manifest: no new request
    assert len(server.log) == 1


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    data = _blob(500_000, 1)
    url = server.add("/big.bin", data, "truncate_once")
    out = download(url, tmp_path / "big.bin", **FAST)
    assert out.read_bytes() == data
    (_, r1), (_, r2) = server.log
    assert r1 is None and r2 == f"bytes={len(data) // 2}-"  # the second request asked only for the rest


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    data = _blob(200_000, 2)
    url = server.add("/p.bin", data)
    (tmp_path / "p.bin.part").write_bytes(data[:12345])
    assert download(url, tmp_path / "p.bin", sha256=_sha(data), **FAST).read_bytes() == data
    assert server.log == [("/p.bin", "bytes=12345-")]


def test_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    data = _blob(100_000, 3)
    url = server.add("/n.bin", data, "norange")
    (tmp_path / "n.bin.part").write_bytes(b"stale bytes from another file")
    assert download(url, tmp_path / "n.bin", sha256=_sha(data), **FAST).read_bytes() == data


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    url = server.add("/w.bin", _blob(50_000, 4))
    with pytest.raises(ChecksumError, match="does not match"):
        download(url, tmp_path / "w.bin", sha256="0" * 64, **FAST)
    assert sorted(os.listdir(tmp_path)) == []


def test_checksum_recorded_on_first_fetch_is_enforced_later(server, tmp_path):
    url = server.add("/t.bin", _blob(10_000, 5))
    download(url, tmp_path / "t.bin", **FAST)
    (tmp_path / "t.bin").unlink()
    server.files["/t.bin"] = _blob(10_000, 6)  # the publisher's file changed
    with pytest.raises(ChecksumError):
        download(url, tmp_path / "t.bin", **FAST)
    assert not (tmp_path / "t.bin").exists() and not (tmp_path / "t.bin.part").exists()


def test_corrupted_complete_file_is_fetched_again(server, tmp_path):
    data = _blob(20_000, 7)
    url = server.add("/c.bin", data)
    (tmp_path / "c.bin").write_bytes(b"looks complete but is not")
    assert download(url, tmp_path / "c.bin", sha256=_sha(data), **FAST).read_bytes() == data


def test_server_error_retries_then_fails_naming_the_url(server, tmp_path):
    url = server.add("/e.bin", b"x", "error")
    with pytest.raises(FetchError) as e:
        download(url, tmp_path / "e.bin", **FAST)
    assert url in str(e.value) and "HTTP 500" in str(e.value) and "by hand" in str(e.value)
    assert server.count["/e.bin"] == FAST["retries"] + 1
    assert not (tmp_path / "e.bin").exists()


def test_transient_server_errors_are_retried(server, tmp_path):
    data = _blob(30_000, 8)
    url = server.add("/r.bin", data, "error_twice")
    assert download(url, tmp_path / "r.bin", **FAST).read_bytes() == data
    assert server.count["/r.bin"] == 3


def test_not_found_fails_at_once(server, tmp_path):
    url = server.add("/gone.bin", b"", "missing")
    with pytest.raises(FetchError, match="HTTP 404"):
        download(url, tmp_path / "gone.bin", **FAST)
    assert server.count["/gone.bin"] == 1


def test_unreachable_host_fails_fast(tmp_path):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    url = f"http://127.0.0.1:{port}/night2day.tar.gz"
    t0 = time.monotonic()
    with pytest.raises(FetchError) as e:
        download(url, tmp_path / "x.tar.gz", timeout=5, retries=4, backoff=1.0)
    assert time.monotonic() - t0 < 5
    assert url in str(e.value) and str(tmp_path / "x.tar.gz") in str(e.value)


# ---- archives ------------------------------------------------------------------------------------------------
def _tar(path, members):
    """members: (name, kind, payload): kind 'file' (bytes), 'sym'/'hard' (link target), 'chr'."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            if kind == "file": ti.size = len(payload); tf.addfile(ti, io.BytesIO(payload)); continue
            ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE}[kind]
            ti.linkname = payload or ""
            tf.addfile(ti)
    return path


MALICIOUS_TARS = {
    "dotdot": [("ok.txt", "file", b"ok"), ("../escaped.txt", "file", b"bad")],
    "nested_dotdot": [("a/../../escaped.txt", "file", b"bad")],
    "absolute": [("/tmp/chimle-escaped.txt", "file", b"bad")],
    "symlink_out": [("link", "sym", "../../etc"), ("ok.txt", "file", b"ok")],
    "symlink_abs": [("link", "sym", "/etc/passwd")],
    "symlink_then_write": [("d", "sym", "/tmp"), ("d/chimle-escaped.txt", "file", b"bad")],
    "hardlink_out": [("h", "hard", "../../etc/passwd")],
    "device": [("dev", "chr", None)],
}


@pytest.mark.parametrize("kind", sorted(MALICIOUS_TARS))
def test_malicious_tar_is_refused_and_leaves_nothing(kind, tmp_path):
    arc = _tar(tmp_path / "evil.tar.gz", MALICIOUS_TARS[kind])
    dest = tmp_path / "sub" / "out"
    with pytest.raises(UnsafeArchiveError):
        safe_extract(arc, dest)
    assert (not dest.exists() and not (tmp_path / "escaped.txt").exists()
            and not (tmp_path / "sub" / "escaped.txt").exists())
    assert os.listdir(tmp_path / "sub") == []
    assert not Path("/tmp/chimle-escaped.txt").exists()


def _zip(path, members, symlink=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members: zf.writestr(name, data)
        if symlink:
            zi = zipfile.ZipInfo(symlink[0]); zi.external_attr = (0o120777 << 16)
            zf.writestr(zi, symlink[1])
    return path


@pytest.mark.parametrize("members,symlink", [([("../escaped.txt", b"bad")], None),
                                             ([("/abs.txt", b"bad")], None),
                                             ([("C:/win.txt", b"bad")], None),
                                             ([("ok.txt", b"ok")], ("link", "../../etc"))])
def test_malicious_zip_is_refused(members, symlink, tmp_path):
    arc = _zip(tmp_path / "evil.zip", members, symlink)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(arc, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["evil.zip"]


def test_benign_archives_extract(tmp_path):
    arc = _tar(tmp_path / "ok.tar.gz", [("d/a.txt", "file", b"a"), ("d/same.txt", "sym", "a.txt"),
                                        ("d/e/", "file", b"")])
    got = safe_extract(arc, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "a.txt").read_bytes() == b"a"
    assert ((tmp_path / "out" / "d" / "same.txt").read_bytes() == b"a"
            and not (tmp_path / "out" / "d" / "same.txt").is_symlink())
    assert "d/a.txt" in got
    z = _zip(tmp_path / "ok.zip", [("x/y.txt", b"y")])
    safe_extract(z, tmp_path / "zout")
    assert (tmp_path / "zout" / "x" / "y.txt").read_bytes() == b"y"


def test_not_an_archive(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"this is not a tar")
    with pytest.raises(FetchError, match="not a readable tar or zip"):
        safe_extract(tmp_path / "junk.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- the paper's sources, end to end on tiny stand-ins -------------------------------------------------------
def _params(tmp_path, edit):
    d = read_yaml(repo_path("params.yaml"))  # YAML 1.2, as DVC reads and writes it (PyYAML's 1.1 reads 4:2:0 as 14520)
    d["fetch"].update(downloads=str(tmp_path / "downloads"), timeout_s=5.0, retries=2, backoff_s=0.01)
    edit(d)
    p = tmp_path / "params.yaml"; p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def _jpeg(arr):
    b = io.BytesIO(); Image.fromarray(arr).save(b, "JPEG", quality=90); return b.getvalue()


def _night2day_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for split, names in (("train", ["astronaut", "coffee", "rocket"]), ("val", ["chelsea"]), ("test", ["chelsea"])):
            for i, n in enumerate(names):
                day = np.asarray(Image.fromarray(getattr(skdata, n)()).resize((128, 128)))
                pair = np.concatenate([day // 6, day], 1)  # night | day, 128x256
                data = _jpeg(pair)
                ti = tarfile.TarInfo(f"night2day/{split}/{i + 1}.jpg"); ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_night2day_fetch_and_prepare(server, tmp_path):
    tgz = _night2day_tar()
    url = server.add("/pix2pix/datasets/night2day.tar.gz", tgz, "truncate_once")

    def edit(d):
        d["fetch"]["night2day"].update(url=url, sha256=_sha(tgz))
        d["profiles"]["embedded"]["data"]["n2d"].update(source="night2day", night="left", resize_short=0,
                                                        train_crops_per_image=2, test_crops_per_image=1)
    params = _params(tmp_path, edit)
    raw = fetch_task("n2d", "embedded", params, tmp_path / "raw")
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.jpg")) == \
        ["test/1.jpg", "train/1.jpg", "train/2.jpg", "train/3.jpg", "val/1.jpg"]
    man = yaml.safe_load((raw / "MANIFEST.yaml").read_text())
    assert man["archive_sha256"] == _sha(tgz)
    cfg = load_params(params).resolve("embedded")
    out = prepare_task("n2d", cfg, raw, tmp_path / "prepared")
    pm = yaml.safe_load((out / "MANIFEST.yaml").read_text())
    assert pm["counts"] == {"train": 6, "test_in": 3, "test": 1} and pm["proxy"] is False
    night = np.asarray(Image.open(out / "test" / "input" / "1_000.png"), np.float32)
    day = np.asarray(Image.open(out / "test" / "target" / "1_000.png"), np.float32)
    assert night.mean() < 0.3 * day.mean()  # the left half (night) became the input


def test_night2day_offline_fails_fast_with_instructions(tmp_path):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    url = f"http://127.0.0.1:{port}/night2day.tar.gz"
    params = _params(tmp_path,
                     lambda d: (d["fetch"]["night2day"].update(url=url),
                                d["profiles"]["embedded"]["data"]["n2d"].update(source="night2day", night="left")))
    t0 = time.monotonic()
    with pytest.raises(FetchError) as e:
        fetch_task("n2d", "embedded", params, tmp_path / "raw")
    assert time.monotonic() - t0 < 5
    assert url in str(e.value) and "night2day.tar.gz" in str(e.value) and "dvc repro fetch@n2d" in str(e.value)
    assert not (tmp_path / "raw").exists()


def _tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_ilsvrc_extracts_only_the_needed_synsets(tmp_path, monkeypatch):
    img = _jpeg(skdata.astronaut()[::4, ::4])
    inner = {s: _tar_bytes([(f"{s}_{i}.JPEG", img) for i in range(3)]) for s in ("n02279972", "n01440764")}
    (tmp_path / "ILSVRC2012_img_train.tar").write_bytes(_tar_bytes([(f"{s}.tar", b) for s, b in inner.items()]))
    params = _params(tmp_path,
                     lambda d: d["fetch"]["ilsvrc"].update(train_path="", synsets={"sr": ["n02279972"], "col": []}))
    with pytest.raises(FetchError, match="CHIMLE_ILSVRC_TRAIN"):
        fetch_task("sr", "paper", params, tmp_path / "raw")
    monkeypatch.setenv("CHIMLE_ILSVRC_TRAIN", str(tmp_path / "ILSVRC2012_img_train.tar"))
    raw = fetch_task("sr", "paper", params, tmp_path / "raw")
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.JPEG")) == \
        [f"n02279972/n02279972_{i}.JPEG" for i in range(3)]
    monkeypatch.setenv("CHIMLE_ILSVRC_TRAIN", str(tmp_path / "nowhere"))
    with pytest.raises(FetchError, match="not found at"):
        fetch_task("sr", "paper", params, tmp_path / "raw2")


def test_raise1k_csv_downloads_and_converts(server, tmp_path):
    tifs = {}
    for n in ("r0001", "r0002"):
        b = io.BytesIO(); Image.fromarray(skdata.coffee()[:200, :300]).save(b, "TIFF"); tifs[n] = b.getvalue()
        server.add(f"/RAISE/TIFF/{n}.TIF", tifs[n])
    dead = "http://dead-host.invalid"
    rows = [{"File": n, "NEF": "", "TIFF": f"{dead}/RAISE/TIFF/{n}.TIF"} for n in tifs]
    text = io.StringIO(); w = csv.DictWriter(text, ["File", "NEF", "TIFF"]); w.writeheader(); w.writerows(rows)
    csv_url = server.add("/RAISE_1k.csv", text.getvalue().encode())
    params = _params(tmp_path, lambda d: d["fetch"]["raise1k"].update(csv_url=csv_url, host_rewrite={dead: server.url},
                                                                      resize_short=100))
    raw = fetch_task("dc", "paper", params, tmp_path / "raw")
    assert sorted(p.name for p in raw.glob("*.png")) == ["r0001.png", "r0002.png"]
    assert Image.open(raw / "r0001.png").size == (150, 100)
    m = load_download_manifest(tmp_path / "downloads" / "raise1k")
    assert m[f"{server.url}/RAISE/TIFF/r0001.TIF"]["sha256"] == _sha(tifs["r0001"])
    assert sha256_file(tmp_path / "downloads" / "raise1k" / "RAISE_1k.csv") == m[csv_url]["sha256"]


def test_raise1k_without_index_explains(tmp_path):
    params = _params(tmp_path, lambda d: None)
    with pytest.raises(FetchError, match="Download RAISE_1k.csv from http://loki.disi.unitn.it"):
        fetch_task("dc", "paper", params, tmp_path / "raw")


def test_complete_partial_file_is_accepted_after_416(server, tmp_path):
    data = _blob(40_000, 9)
    url = server.add("/done.bin", data)
    (tmp_path / "done.bin.part").write_bytes(data)  # a previous run got every byte but stopped before the rename
    assert download(url, tmp_path / "done.bin", sha256=_sha(data), **FAST).read_bytes() == data
    assert server.log == [("/done.bin", f"bytes={len(data)}-")]


def test_oversized_partial_file_is_discarded(server, tmp_path):
    data = _blob(40_000, 10)
    url = server.add("/big.bin", data)
    (tmp_path / "big.bin.part").write_bytes(data + b"junk")
    assert download(url, tmp_path / "big.bin", **FAST).read_bytes() == data
    assert [r for _, r in server.log] == [f"bytes={len(data) + 4}-", None]


# ---- a bad first download is never cached or pinned -----------------------------------------------------------
HTML = b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body>try later</body></html>\n"


@pytest.mark.parametrize("name,body,ctype", [("n.tar.gz", HTML, "text/html; charset=utf-8"),   # an error page
                                             ("n.tar.gz", HTML, "application/octet-stream"),  # ... mislabelled
                                             ("n.tar.gz", b"\0" * 5000, None),                 # no gzip signature
                                             ("i.zip", _blob(5000, 11), None),
                                             ("RAISE_1k.csv", HTML, "text/html"),
                                             ("p.png", b"GIF89a" + _blob(500, 12), None)])
def test_wrong_type_is_refused_and_not_recorded(server, tmp_path, name, body, ctype):
    url = server.add("/" + name, body, ctype=ctype)
    with pytest.raises(FetchError, match=f"instead of {name}"):
        download(url, tmp_path / name, **FAST)
    assert sorted(os.listdir(tmp_path)) == []  # no file, no partial file, no manifest entry
    good = gzip.compress(_blob(5000, 13)) if name.endswith(".gz") else _blob(10, 14)
    if name.endswith(".gz"):  # once the server is right again, the fetch succeeds: nothing was pinned
        server.files["/" + name] = good; server.types.pop("/" + name, None)
        assert download(url, tmp_path / name, **FAST).read_bytes() == good


def test_a_given_checksum_outranks_the_type_check(server, tmp_path):
    odd = b"\0" * 5000  # not what a .tar.gz looks like, but the checksum in params.yaml vouches for it
    url = server.add("/odd.tar.gz", odd)
    assert download(url, tmp_path / "odd.tar.gz", sha256=_sha(odd), **FAST).read_bytes() == odd
    assert download(url, tmp_path / "odd.tar.gz", sha256=_sha(odd), **FAST).read_bytes() == odd  # cached copy kept
    assert len(server.log) == 1


def test_bad_file_pinned_by_an_earlier_run_is_replaced(server, tmp_path):
    good = gzip.compress(_blob(50_000, 15))
    url = server.add("/night2day.tar.gz", good)
    (tmp_path / "night2day.tar.gz").write_bytes(HTML)  # what an earlier run cached, with its checksum recorded
    (tmp_path / "MANIFEST.yaml").write_text(yaml.safe_dump({url: {"file": "night2day.tar.gz", "sha256": _sha(HTML),
                                                                  "bytes": len(HTML), "fetched": "2026-01-01"}}))
    assert download(url, tmp_path / "night2day.tar.gz", **FAST).read_bytes() == good
    assert load_download_manifest(tmp_path)[url]["sha256"] == _sha(good)


def test_range_answered_from_another_offset_restarts_from_zero(server, tmp_path):
    data = _blob(60_000, 16)
    url = server.add("/wr.bin", data, "wrong_range")
    (tmp_path / "wr.bin.part").write_bytes(data[:12345])
    assert download(url, tmp_path / "wr.bin", **FAST).read_bytes() == data
    assert server.log[0] == ("/wr.bin", "bytes=12345-") and server.log[-1] == ("/wr.bin", None)
    assert load_download_manifest(tmp_path)[url]["sha256"] == _sha(data)


def test_partial_range_answers_are_completed(server, tmp_path):
    data = _blob(45_000, 17)  # the server returns at most 10,000 bytes per Range request, with the true total
    url = server.add("/sr.bin", data, "truncate_once short_range")
    assert download(url, tmp_path / "sr.bin", **FAST).read_bytes() == data  # progress is no failed attempt
    assert load_download_manifest(tmp_path)[url]["sha256"] == _sha(data)


def test_refetch_discards_the_cached_file_and_its_checksum(server, tmp_path):
    url = server.add("/v.bin", _blob(10_000, 18))
    download(url, tmp_path / "v.bin", **FAST)
    (tmp_path / "v.bin").unlink()
    new = server.files["/v.bin"] = _blob(10_000, 19)  # the publisher replaced the file
    with pytest.raises(ChecksumError, match="refetch"):
        download(url, tmp_path / "v.bin", **FAST)
    assert download(url, tmp_path / "v.bin", refetch=True, **FAST).read_bytes() == new
    assert load_download_manifest(tmp_path)[url]["sha256"] == _sha(new)
    with pytest.raises(ChecksumError):  # a checksum given in params.yaml still holds
        download(url, tmp_path / "v.bin", sha256="0" * 64, refetch=True, **FAST)


@pytest.mark.parametrize("mode", ["ok", "nolength"])
def test_size_cap(server, tmp_path, mode):
    url = server.add("/huge.bin", _blob(300_000, 20), mode)
    with pytest.raises(FetchError, match="max_bytes=100000"):
        download(url, tmp_path / "huge.bin", max_bytes=100_000, **FAST)
    assert sorted(os.listdir(tmp_path)) == []


def test_deadline(server, tmp_path):
    url = server.add("/slow.bin", _blob(100_000, 21), "drip")  # would take 5 s
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="deadline_s=0.5"):
        download(url, tmp_path / "slow.bin", deadline_s=0.5, **FAST)
    assert time.monotonic() - t0 < 4
    assert (tmp_path / "slow.bin.part").exists() and not (tmp_path / "slow.bin").exists()  # kept to resume


def test_cli_reports_errors_without_traceback(tmp_path):
    params = _params(tmp_path, lambda d: d["fetch"]["ilsvrc"].update(train_path=""))
    env = {k: v for k, v in os.environ.items() if k != "CHIMLE_ILSVRC_TRAIN"}
    r = subprocess.run([sys.executable, "-m", "chimle.fetch", "--task", "sr", "--profile", "paper",
                        "--params", str(params), "--dest", str(tmp_path / "raw")],
                       capture_output=True, text=True, env=env, cwd=repo_path())
    assert r.returncode == 1 and "CHIMLE_ILSVRC_TRAIN" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "raw").exists()


# ---- extraction is capped ---------------------------------------------------------------------------------------
def _sparse_tar(path, size):
    """A tar whose one member declares `size` bytes of holes (PAX GNU sparse 0.1): a few hundred bytes on disk."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("holes.bin"); ti.size = 0
        ti.pax_headers = {"GNU.sparse.map": "0,0", "GNU.sparse.size": str(size)}
        tf.addfile(ti)
    return path


def _bombs(tmp_path):
    zeros = b"\0" * (8 << 20)
    return {"tar.gz": _tar(tmp_path / "bomb.tar.gz", [("zeros.bin", "file", zeros)]),
            "zip": _zip(tmp_path / "bomb.zip", [("zeros.bin", zeros)]),
            "sparse": _sparse_tar(tmp_path / "sparse.tar.gz", 8 << 20)}


@pytest.mark.parametrize("kind", ["tar.gz", "zip", "sparse"])
def test_compression_bomb_is_refused_with_default_caps(kind, tmp_path):
    arc = _bombs(tmp_path)[kind]
    assert arc.stat().st_size < 20_000  # 8 MiB of zeros in a few KB
    with pytest.raises(ArchiveLimitError, match="max_ratio") as e:
        safe_extract(arc, tmp_path / "sub" / "out")
    assert str(arc) in str(e.value)
    assert not (tmp_path / "sub").exists() or os.listdir(tmp_path / "sub") == []
    got = safe_extract(arc, tmp_path / "out", max_ratio=1e6)  # raising the cap lets it through
    assert (tmp_path / "out" / got[0]).stat().st_size == 8 << 20


@pytest.mark.parametrize("kind", ["tar.gz", "zip", "sparse"])
def test_total_size_cap(kind, tmp_path):
    arc = _bombs(tmp_path)[kind]
    with pytest.raises(ArchiveLimitError, match="max_bytes=1000000") as e:
        safe_extract(arc, tmp_path / "out", max_bytes=1_000_000, max_ratio=1e6)
    assert str(arc) in str(e.value) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_entry_count_cap(fmt, tmp_path):
    members = [(f"d/{i}.txt", b"x") for i in range(300)]
    arc = _zip(tmp_path / "many.zip", members) if fmt == "zip" else \
        _tar(tmp_path / "many.tar.gz", [(n, "file", b) for n, b in members])
    with pytest.raises(ArchiveLimitError, match="max_members=100") as e:
        safe_extract(arc, tmp_path / "out", max_members=100)
    assert str(arc) in str(e.value) and not (tmp_path / "out").exists()
    assert len(safe_extract(arc, tmp_path / "out", max_members=1000)) == 300


def test_limits_reach_extraction_through_fetch_task(server, tmp_path):
    tgz = _night2day_tar()
    url = server.add("/night2day.tar.gz", tgz)
    params = _params(tmp_path,
                     lambda d: (d["fetch"]["night2day"].update(url=url),
                                d["profiles"]["embedded"]["data"]["n2d"].update(source="night2day", night="left")))
    with pytest.raises(FetchError, match="max_bytes=1000;"):
        fetch_task("n2d", "embedded", params, tmp_path / "raw",
                   limits=replace(load_params().fetch.limits, download_bytes=1000))
    with pytest.raises(ArchiveLimitError, match="max_members=3 members"):
        fetch_task("n2d", "embedded", params, tmp_path / "raw",
                   limits=replace(load_params().fetch.limits, extract_members=3))
    assert not (tmp_path / "raw").exists()


# ---- a download cut short without a Content-Length (issue "Robust, round three", item 3) ------------------------
def _n2d_params(tmp_path, url, sha=""):
    return _params(tmp_path,
                   lambda d: (d["fetch"]["night2day"].update(url=url, sha256=sha),
                              d["profiles"]["embedded"]["data"]["n2d"].update(source="night2day", night="left")))


def test_truncated_download_without_length_is_discarded_when_it_cannot_be_extracted(server, tmp_path):
    tgz = _night2day_tar()
    url = server.add("/night2day.tar.gz", tgz, "truncate_once nolength")  # the first answer stops halfway, unannounced
    params, dl = _n2d_params(tmp_path, url), tmp_path / "downloads"
    with pytest.raises(FetchError) as e:
        fetch_task("n2d", "embedded", params, tmp_path / "raw")
    msg = str(e.value)
    assert str(dl / "night2day.tar.gz") in msg and "truncated or corrupt" in msg and "run the stage again" in msg, msg
    assert not (dl / "night2day.tar.gz").exists() and url not in load_download_manifest(dl)  # nothing pinned
    assert not (tmp_path / "raw").exists()
    raw = fetch_task("n2d", "embedded", params, tmp_path / "raw")  # the rerun downloads it again, whole
    assert len(list(raw.rglob("*.jpg"))) == 5 and load_download_manifest(dl)[url]["sha256"] == _sha(tgz)


def test_unreadable_archive_with_a_configured_checksum_is_kept(server, tmp_path):
    cut = _night2day_tar()[:4000]  # what params.yaml's checksum names, though it cannot be extracted
    url = server.add("/night2day.tar.gz", cut)
    params = _n2d_params(tmp_path, url, _sha(cut))
    with pytest.raises(FetchError, match="matches fetch.night2day.sha256"):
        fetch_task("n2d", "embedded", params, tmp_path / "raw")
    assert (tmp_path / "downloads" / "night2day.tar.gz").read_bytes() == cut  # no point downloading it again


def _corrupt(tmp_path):
    good = _tar(tmp_path / "good.tar.gz", [(f"d/{i}.bin", "file", _blob(20_000, i)) for i in range(5)]).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[:len(good) // 2])
    (tmp_path / "stub.tar.gz").write_bytes(good[:30])
    flipped = bytearray(good); flipped[len(good) // 2] ^= 0xFF
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(flipped))
    (tmp_path / "junk.tar.bz2").write_bytes(b"BZh91AY&SY" + _blob(2000, 30))
    z = _zip(tmp_path / "crc.zip", [("x.bin", _blob(5000, 31))]).read_bytes()
    bad = bytearray(z); at = z.index(b"PK\x01\x02"); bad[at + 16] ^= 0xFF  # the central directory's CRC-32
    (tmp_path / "crc.zip").write_bytes(bytes(bad))
    return ["cut.tar.gz", "stub.tar.gz", "flipped.tar.gz", "junk.tar.bz2", "crc.zip"]


def test_read_errors_are_fetch_errors_naming_the_file(tmp_path):
    for name in _corrupt(tmp_path):
        with pytest.raises(FetchError) as e:
            safe_extract(tmp_path / name, tmp_path / "out")
        assert str(tmp_path / name) in str(e.value) and "truncated or corrupt" in str(e.value), (name, str(e.value))
        assert not (tmp_path / "out").exists()


# ---- structural clashes in archives (item 13) ----------------------------------------------------------------------
def _zip_declaring(path, declared):
    "A zip of one member whose headers declare `declared` bytes instead of its true 11."
    import struct
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf: zf.writestr("x.txt", b"hello world")
    b = bytearray(path.read_bytes())
    struct.pack_into("<I", b, b.index(b"PK\x03\x04") + 22, declared)
    struct.pack_into("<I", b, b.index(b"PK\x01\x02") + 24, declared)
    path.write_bytes(bytes(b))
    return path


def _dir_then_file(path, folder="a", file="a"):
    with tarfile.open(path, "w:gz") as tf:
        ti = tarfile.TarInfo(folder); ti.type = tarfile.DIRTYPE; tf.addfile(ti)
        if file: ti = tarfile.TarInfo(file); ti.size = 1; tf.addfile(ti, io.BytesIO(b"x"))
    return path


DEEP = "/".join(["a"] * 2000) + "/f.txt"
CLASHES = {  # name -> (build the archive, a member the message names, what it says)
    "file_then_folder": (lambda p: _tar(p / "c.tar.gz", [("a", "file", b"x"), ("a/b", "file", b"y")]),
                         "'a/b'", "clashes"),
    "folder_then_file": (lambda p: _tar(p / "c.tar.gz", [("a/b", "file", b"y"), ("a", "file", b"x")]),
                         "'a'", "clashes"),
    "folder_member_then_file": (lambda p: _dir_then_file(p / "c.tar.gz"), "'a'", "clashes"),
    "zip_file_then_folder": (lambda p: _zip(p / "c.zip", [("a", b"x"), ("a/b", b"y")]), "'a/b'", "clashes"),
    "long_name": (lambda p: _tar(p / "c.tar.gz", [("n" * 300 + ".txt", "file", b"x")]), "nnnnnnnn", "too long"),
    "deep_path": (lambda p: _tar(p / "c.tar.gz", [(DEEP, "file", b"x")]), "a/a/a/a", "2000 folders deep"),
    "deep_folder": (lambda p: _dir_then_file(p / "c.tar.gz", DEEP.rsplit("/", 1)[0], None),
                    "a/a/a/a", "2000 folders deep"),
    "zip_size_too_small": (lambda p: _zip_declaring(p / "c.zip", 5), "'x.txt'", "truncated or corrupt"),
    "zip_size_too_large": (lambda p: _zip_declaring(p / "c.zip", 5000), "'x.txt'", "declares 5000 bytes"),
}


@pytest.mark.parametrize("kind", sorted(CLASHES))
def test_structural_clashes_are_fetch_errors_naming_the_member(kind, tmp_path):
    build, member, why = CLASHES[kind]
    arc = build(tmp_path)
    with pytest.raises(FetchError) as e:
        safe_extract(arc, tmp_path / "sub" / "out")
    msg = str(e.value)
    assert str(arc) in msg and member in msg and why in msg and len(msg) < 1000, msg
    assert os.listdir(tmp_path / "sub") == []


# ---- embedded photos from Debian packages ----------------------------------------------------------------------
def _deb(members, data_name="data.tar.xz"):
    "A Debian package made here: an ar archive of debian-binary, control.tar.xz and `data_name` holding `members`."
    def tar(ms):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tf:
            for name, data in ms:
                ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
        return buf.getvalue()
    out = b"!<arch>\n"
    for name, data in [("debian-binary", b"2.0\n"), ("control.tar.xz", tar([("./control", b"Package: toy\n")])),
                       (data_name, tar(members))]:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
    return out


def _toy(server, tmp_path, members=None, deb=None):
    "Two photos of a toy package served by `server`: (fetch config, photos, packages, mirrors)."
    red, blue = _jpeg(np.full((8, 8, 3), (200, 30, 30), np.uint8)), _jpeg(np.full((8, 8, 3), (30, 30, 200), np.uint8))
    if deb is None:
        deb = _deb(members if members is not None else
                   [("./usr/share/toy/red.jpg", red), ("./usr/share/toy/blue.jpg", blue), ("./usr/share/doc/x", b"x")])
    photos = {"red": Photo("toy", "/usr/share/toy/red.jpg", "CC0", "made here", _sha(red)),
              "blue": Photo("toy", "/usr/share/toy/blue.jpg", "CC0", "made here", _sha(blue))}
    packages = {"toy": ("1.0-1", "pool/main/t/toy/toy_1.0-1_all.deb", _sha(deb))}
    url = server.add("/debian/pool/main/t/toy/toy_1.0-1_all.deb", deb)
    fc = load_params().fetch
    fc = replace(fc, downloads=str(tmp_path / "dl"), timeout_s=5.0, retries=1, backoff_s=0.01)
    return fc, photos, packages, (url.removesuffix("/pool/main/t/toy/toy_1.0-1_all.deb"),), red


def _free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port


def test_missing_debian_photo_names_it_and_the_command(tmp_path):
    if Path(EMBEDDED_PHOTOS["life"].file).exists(): pytest.skip("lomiri-wallpapers-16.04 is installed system-wide")
    with pytest.raises(FetchError) as e:
        embedded_photo_path("life", tmp_path)
    msg = str(e.value)
    assert "'life'" in msg and "make photos" in msg and "python -m chimle.fetch --photos" in msg
    assert "lomiri-wallpapers-16.04 20.04.0-2" in msg and str(tmp_path / "debian") in msg
    with pytest.raises(FetchError) as e:  # several at once: one error naming them all, and nothing written
        fetch_embedded(tmp_path / "raw", ["astronaut", "life"], ["citrus_fruits"], tmp_path)
    assert "2 embedded photos are missing or differ: life, citrus_fruits" in str(e.value)
    assert not (tmp_path / "raw" / "train" / "astronaut.png").exists()


def test_debian_photo_with_other_bytes_is_refused(tmp_path):
    if Path(EMBEDDED_PHOTOS["life"].file).exists(): pytest.skip("lomiri-wallpapers-16.04 is installed system-wide")
    f = tmp_path / "debian" / "lomiri-wallpapers-16.04" / EMBEDDED_PHOTOS["life"].file.lstrip("/")
    f.parent.mkdir(parents=True); f.write_bytes(_jpeg(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(ChecksumError) as e:
        fetch_embedded(tmp_path / "raw", [], ["life"], tmp_path)
    assert str(f) in str(e.value) and EMBEDDED_PHOTOS["life"].sha256 in str(e.value) and "make photos" in str(e.value)


def test_install_photos_downloads_checks_and_extracts_only_the_photos(server, tmp_path):
    fc, photos, packages, mirrors, red = _toy(server, tmp_path)
    down = f"http://127.0.0.1:{_free_port()}/debian"  # the first mirror is down: the second serves
    assert install_photos(fc, photos=photos, packages=packages, mirrors=(down, *mirrors)) == {"toy": ["red", "blue"]}
    root = tmp_path / "dl" / "debian"
    assert sorted(p.relative_to(tmp_path / "dl").as_posix() for p in (tmp_path / "dl").rglob("*") if p.is_file()) == [
        "MANIFEST.yaml", "debian/toy/usr/share/toy/blue.jpg", "debian/toy/usr/share/toy/red.jpg",
        "debian/toy_1.0-1_all.deb"]
    assert (root / "toy/usr/share/toy/red.jpg").read_bytes() == red
    recorded = load_download_manifest(tmp_path / "dl")[mirrors[0] + "/" + packages["toy"][1]]
    assert recorded["sha256"] == packages["toy"][2]
    n = len(server.log)
    assert install_photos(fc, photos=photos, packages=packages, mirrors=mirrors) == {}  # all there: nothing done
    (root / "toy/usr/share/toy/red.jpg").write_bytes(b"damaged")
    assert install_photos(fc, photos=photos, packages=packages, mirrors=mirrors) == {"toy": ["red"]}
    assert (root / "toy/usr/share/toy/red.jpg").read_bytes() == red and len(server.log) == n  # from the cached .deb


def test_install_photos_refuses_a_package_with_another_checksum(server, tmp_path):
    fc, photos, packages, mirrors, _ = _toy(server, tmp_path)
    packages["toy"] = (*packages["toy"][:2], "0" * 64)
    with pytest.raises(FetchError) as e:
        install_photos(fc, photos=photos, packages=packages, mirrors=mirrors)
    msg = str(e.value)
    assert "red, blue" in msg and "toy 1.0-1" in msg and "does not match" in msg
    assert "update the checksum in chimle.fetch.DEBIAN_PACKAGES" in msg
    assert not (tmp_path / "dl" / "debian" / "toy").exists()
    assert not (tmp_path / "dl" / "debian" / "toy_1.0-1_all.deb").exists()


def test_install_photos_offline_names_every_photo_and_the_manual_route(tmp_path):
    fc = replace(load_params().fetch, downloads=str(tmp_path / "dl"), timeout_s=5.0, retries=1, backoff_s=0.01)
    photos = {"red": Photo("toy", "/usr/share/toy/red.jpg", "CC0", "made here", "0" * 64),
              "cat": Photo("pet", "/usr/share/pet/cat.jpg", "CC0", "made here", "0" * 64)}
    packages = {"toy": ("1.0-1", "pool/main/t/toy/toy_1.0-1_all.deb", "0" * 64),
                "pet": ("2", "pool/main/p/pet/pet_2_all.deb", "0" * 64)}
    mirrors = (f"http://127.0.0.1:{_free_port()}/debian", f"http://127.0.0.1:{_free_port()}/snapshot")
    t0 = time.monotonic()
    with pytest.raises(FetchError) as e:
        install_photos(fc, photos=photos, packages=packages, mirrors=mirrors)
    msg = str(e.value)
    assert time.monotonic() - t0 < 5
    assert "embedded photos red come from the Debian package toy 1.0-1" in msg and "2 mirror(s)" in msg
    assert "embedded photos cat come from the Debian package pet 2" in msg  # the second package is tried too
    assert mirrors[0] + "/pool/main/t/toy/toy_1.0-1_all.deb" in msg and "apt-get install pet=2" in msg
    assert str(tmp_path / "dl" / "debian" / "toy_1.0-1_all.deb") in msg and "make photos" in msg


@pytest.mark.parametrize("kind,why", [("escape", "'..' component"), ("no_data", "no data.tar member"),
                                      ("not_ar", "not a Debian package"),
                                      ("missing", "no member /usr/share/toy/red.jpg"),
                                      ("other_bytes", "not the pinned")])
def test_install_photos_bad_packages_are_clear_errors(kind, why, server, tmp_path):
    red_other = _jpeg(np.zeros((8, 8, 3), np.uint8))
    deb = {"escape": _deb([("../../evil.jpg", b"x"), ("./usr/share/toy/red.jpg", red_other)]),
           "no_data": _deb([], data_name="other.tar.xz"),
           "not_ar": b"<!DOCTYPE html><html>not a package</html>",
           "missing": _deb([("./usr/share/toy/blue.jpg", b"x")]),
           "other_bytes": _deb([("./usr/share/toy/red.jpg", red_other)])}[kind]
    fc, photos, packages, mirrors, _ = _toy(server, tmp_path, deb=deb)
    with pytest.raises((FetchError, UnsafeArchiveError)) as e:
        install_photos(fc, names=["red"], photos=photos, packages=packages, mirrors=mirrors)
    assert why in str(e.value), str(e.value)
    assert not (tmp_path / "dl" / "evil.jpg").exists() and not (tmp_path / "evil.jpg").exists()
    if kind in ("no_data", "not_ar"): assert isinstance(e.value, ArchiveReadError)

