"""load_params on hostile or mistaken params files: every one is a ConfigError naming the file and the cause, fast.
An alias bomb, deep nesting, an integer key, a file that is not UTF-8, values past any sane bound."""
import dataclasses
import subprocess
import sys
import time
import typing

import pytest
import yaml

from chimle import config
from chimle.config import ConfigError, load_params, repo_path
from chimle.files import read_yaml

RAW = repo_path("params.yaml").read_text()


def _file(tmp_path, text=None, data=None):
    p = tmp_path / "params.yaml"
    p.write_bytes(data if data is not None else text.encode())
    return p


def _edited(tmp_path, edit):
    d = read_yaml(repo_path("params.yaml")); edit(d)  # YAML 1.2, as DVC reads it (PyYAML reads 4:2:0 as a number)
    return _file(tmp_path, yaml.safe_dump(d, sort_keys=False))


def _fails(path, *parts, within=1.0):
    "load_params(path) raises ConfigError within `within` seconds, its message naming the file and each of `parts`."
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e: load_params(path)
    took = time.perf_counter() - t0
    msg = str(e.value)
    assert str(path) in msg and all(p in msg for p in parts), msg
    assert took < within, f"{took:.2f} s"
    return msg


def _in_subprocess(path, timeout=30):
    "(exception type, message, seconds) of load_params(path) in a fresh interpreter that is killed after `timeout` s."
    code = ("import sys, time\nfrom chimle.config import load_params\nt = time.perf_counter()\n"
            "try: load_params(sys.argv[1]); print('loaded')\n"
            "except BaseException as e: print(type(e).__name__); print(str(e)[:2000])\n"
            "print(time.perf_counter() - t)")
    try: r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: pytest.fail(f"load_params did not answer within {timeout} s")
    lines = r.stdout.strip().splitlines()
    return lines[0], "\n".join(lines[1:-1]), float(lines[-1])


# ---- item 5: an alias bomb of mappings stated in both profiles ---------------------------------------------------
def _bomb(levels=40):
    "2^levels leaves from `levels` lines: each anchor maps two keys to the one before."
    defs = ["l0: &l0 {a: 1, b: 2}"] + [f"l{i}: &l{i} {{a: *l{i - 1}, b: *l{i - 1}}}" for i in range(1, levels)]
    text = RAW.replace("  paper:\n", "  paper:\n    anchors:\n" + "".join(f"      {d}\n" for d in defs)
                       + f"    bomb: *l{levels - 1}\n", 1)
    return text.replace("    extends: paper\n", f"    extends: paper\n    bomb: *l{levels - 1}\n", 1)


def test_alias_bomb_in_both_profiles_is_refused_fast(tmp_path):
    p = _file(tmp_path, _bomb())
    kind, msg, took = _in_subprocess(p)
    assert kind == "ConfigError" and str(p) in msg and "100,000 values" in msg and "alias" in msg, (kind, msg)
    assert took < 1.0, took


def test_self_referring_alias_is_refused(tmp_path):
    text = RAW.replace("  paper:\n", "  paper: &p\n    loop: *p\n", 1)
    p = _file(tmp_path, text.replace("    extends: paper\n", "    extends: paper\n    loop: *p\n", 1))  # both state it
    _fails(p, "nests more than", "refers to itself")


def test_long_extends_chain_is_bounded(tmp_path):
    chain = "".join(f"  p{i}: {{extends: {'paper' if i == 0 else f'p{i - 1}'}}}\n" for i in range(2000))
    p = _file(tmp_path, RAW.replace("\nprofiles:\n", "\nprofiles:\n" + chain, 1))
    _fails(p, "profiles expand to more than 100,000 values", within=10.0)  # most of it: parsing 2,000 lines


# ---- item 7: an integer key -------------------------------------------------------------------------------------
def test_integer_key_is_named(tmp_path):
    p = _file(tmp_path, RAW.replace("    tim:\n      levels: 4\n", "    tim:\n      1: 2\n      levels: 4\n", 1))
    _fails(p, "profiles.paper.tim.1 is not a known key")
    p = _file(tmp_path, "1: 2\n" + RAW)
    assert ": 1 is not a known key" in _fails(p)


def test_non_string_keys_of_free_mappings(tmp_path):
    p = _edited(tmp_path, lambda d: d["fetch"]["raise1k"].update(host_rewrite={1: "x"}))
    _fails(p, "fetch.raise1k.host_rewrite: key 1 must be a string")
    p = _edited(tmp_path, lambda d: d["profiles"]["embedded"].update(extends=["paper"]))
    _fails(p, "profiles.embedded.extends must name a profile")


# ---- item 8: deep nesting, a file that is not UTF-8 -------------------------------------------------------------
@pytest.mark.parametrize("text", ["profile: " + "[" * 100_000 + "\n", "profile: " + "{a: " * 100_000 + "\n",
                                  "- " * 100_000 + "x\n", "".join(" " * i + "k:\n" for i in range(3000))])
def test_deep_nesting_fails_fast(tmp_path, text):
    _fails(_file(tmp_path, text), "nests more than 100 levels deep")


@pytest.mark.parametrize("data,why", [(RAW.replace("# chimle", "# chimlé", 1).encode("latin-1"),
                                       "byte 0xe9 at offset 7"),
                                      (bytes(range(256)) * 10, "byte 0x80 at offset 128")])
def test_file_that_is_not_utf8(tmp_path, data, why):
    _fails(_file(tmp_path, data=data), "is not UTF-8 text", why)


def test_control_characters_name_the_file(tmp_path):
    _fails(_file(tmp_path, "profile: \x00\n"), "is not valid YAML")


# ---- item 12: upper bounds on integers, Adam's betas in [0, 1) ---------------------------------------------------
@pytest.mark.parametrize("section,key,value,why", [
    ("train", "batch_size", 10**12, "profiles.paper.train.batch_size must be <= 65536"),
    ("train", "steps_per_round", 10**30, "profiles.paper.train.steps_per_round must be <= 1000000000"),
    ("train", "betas", [1.0, 0.999], "profiles.paper.train.betas[0] must be < 1.0"),
    ("train", "betas", [0.9, 1.5], "profiles.paper.train.betas[1] must be < 1.0"),
    ("gan", "betas", [0.5, 1.0], "profiles.paper.baselines.gan.betas[1] must be < 1.0")])
def test_upper_bounds(tmp_path, section, key, value, why):
    def edit(d):
        sec = d["profiles"]["paper"]["baselines"]["gan"] if section == "gan" else d["profiles"]["paper"][section]
        sec[key] = value
    _fails(_edited(tmp_path, edit), why)


def _dataclasses(cls, seen):
    if cls in seen: return
    seen.add(cls)
    for t in typing.get_type_hints(cls).values():
        for a in (t, *typing.get_args(t)):
            if dataclasses.is_dataclass(a): _dataclasses(a, seen)


def test_every_integer_key_states_an_upper_bound():
    seen = set(); _dataclasses(config.Params, seen)
    ints = [(c.__name__, f.name, f.metadata) for c in seen for f in dataclasses.fields(c)
            if typing.get_type_hints(c)[f.name] in (int, list[int])]
    assert len(ints) > 80
    assert [(c, n) for c, n, m in ints if m.get("hi") is None] == []
