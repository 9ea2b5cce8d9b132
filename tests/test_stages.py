"""The pipeline's stages: one shape (papermill over a thin notebook in nbs/exp), and deps that list exactly the
chimle modules each stage's notebook imports, directly or through other chimle modules."""
import ast
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
VARS = {k: v for d in PIPELINE.get("vars", []) if isinstance(d, dict) for k, v in d.items()}
STAGES = PIPELINE["stages"]
PAPERMILL = re.compile(r"python -m papermill --cwd \. -k python3 --log-level WARNING (nbs/exp/\w+\.ipynb) ")


def _chimle_imports(tree: ast.AST, skip_in_test: bool = False) -> set[str]:
    "chimle modules imported in `tree` (`from chimle.x import`, `from .x import`, `import chimle.x`)."
    found = set()

    def visit(node):
        if skip_in_test and isinstance(node, ast.If) and "IN_TEST" in ast.unparse(node.test):
            for child in node.orelse: visit(child)  # the test suite's branch never runs under DVC
            return
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1: found.add(mod.split(".")[0])
            elif mod.startswith("chimle."): found.add(mod.split(".")[1])
            elif mod == "chimle": found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("chimle."))
        for child in ast.iter_child_nodes(node): visit(child)

    visit(tree)
    return found


def _module_imports(name: str) -> set[str]:
    return _chimle_imports(ast.parse((ROOT / "chimle" / f"{name}.py").read_text()))


def closure(modules: set[str]) -> set[str]:
    "Every chimle module reached from `modules` by imports."
    seen, todo = set(), list(modules)
    while todo:
        m = todo.pop()
        if m in seen or m.startswith("_"): continue
        seen.add(m); todo += _module_imports(m)
    return seen


def notebook_imports(nb: Path) -> set[str]:
    "chimle modules a stage notebook imports when DVC runs it (the test suite's IN_TEST branches left out)."
    cells = json.loads(nb.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    code = "\n".join(l for l in code.splitlines() if not l.lstrip().startswith(("%", "!")))
    return _chimle_imports(ast.parse(code), skip_in_test=True)


def _template(stage: dict) -> dict:
    st = dict(stage.get("do", stage))
    cmd = " ".join(st["cmd"].split())
    for k, v in VARS.items(): cmd = cmd.replace("${" + k + "}", v)
    return st | {"cmd": cmd}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_is_a_papermill_notebook(name):
    cmd = _template(STAGES[name])["cmd"]
    m = PAPERMILL.search(cmd)
    assert m, f"stage {name}: every stage runs a notebook of nbs/exp with papermill; got {cmd!r}"
    assert (ROOT / m.group(1)).is_file(), f"stage {name}: {m.group(1)} does not exist"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_are_its_imports(name):
    st = _template(STAGES[name])
    nb = PAPERMILL.search(st["cmd"]).group(1)
    want = {nb} | {f"chimle/{m}.py" for m in closure(notebook_imports(ROOT / nb))}
    have = {d for d in st.get("deps", []) if isinstance(d, str) and d.startswith(("chimle/", "nbs/"))}
    assert not want - have, f"stage {name} imports modules its deps lack: {sorted(want - have)}"
    assert not have - want, f"stage {name} lists deps it does not import: {sorted(have - want)}"


def test_closure_follows_imports():
    assert "config" in closure({"core"})  # core imports config
    assert "fetch" not in closure({"tim"})
    assert closure({"files"}) == {"files"}  # the bottom of the package imports nothing of it
    assert closure({"config"}) == {"config", "files"}


def _run_deps(name: str) -> set[str]:
    "The run checkpoints a stage depends on, `${profile}` kept."
    return {d for d in STAGES[name].get("deps", []) if isinstance(d, str) and d.startswith("runs/${profile}/train/")}


def test_release_depends_on_exactly_the_runs_it_releases():
    from chimle.config import load_params
    runs = load_params(ROOT / "params.yaml").train_runs
    want = {f"runs/${{profile}}/train/{name}/checkpoint.pt" for name, r in runs.items()
            if r.seed == 0 and r.method in ("chimle", "cimle")}  # chimle.sample.release_models' defaults
    assert _run_deps("release") == want


def test_sample_efficiency_depends_on_its_task_run():
    from chimle.config import load_params
    task = load_params(ROOT / "params.yaml").resolve().sample_efficiency.task
    deps = set(STAGES["sample_efficiency"]["deps"])
    assert _run_deps("sample_efficiency") == {f"runs/${{profile}}/train/{task}-chimle/checkpoint.pt"}
    assert f"data/prepared/${{profile}}/{task}" in deps


def _make_repro_targets() -> list[str]:
    "The stages `make repro` names when params.yaml's run_baselines is false (`make repro-stages`, as its recipe)."
    recipe = (ROOT / "Makefile").read_text().split("\nrepro:")[1].split("\n\n")[0]
    assert "dvc repro $(REPRO_STAGES) &&" in recipe, "the Makefile's repro recipe no longer names its stages so"
    out = subprocess.run(["make", "-s", "repro-stages"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_default_repro_leaves_out_the_photo_ablations():
    "`make repro` trains and evaluates CHIMLE and cIMLE on every task, and no photo ablation (`dvc repro` does)."
    runs = yaml.safe_load((ROOT / "params.yaml").read_text())["train_runs"]
    targets = set(_make_repro_targets())
    assert {"release", "sample_efficiency", "mode_forcing"} <= targets
    for name, r in runs.items():
        assert (f"evaluate@{name}" in targets) == (r["method"] in ("chimle", "cimle")), name


def test_default_repro_runs_no_comparison_method():
    "With run_baselines false, nothing `make repro` runs may depend on a comparison method's training."
    import networkx as nx
    from dvc.repo import Repo
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["run_baselines"] is False
    graph = Repo(str(ROOT)).index.graph
    stages = {s.addressing: s for s in graph.nodes}
    targets = [a for t in _make_repro_targets() for a in stages if a == t or a.startswith(t + "@")]
    assert targets, "no stage matched make repro's targets"
    upstream = {s.addressing for t in targets for s in nx.descendants(graph, stages[t])} | set(targets)
    baselines = sorted(a for a in upstream if a.startswith(("train_baseline", "evaluate_baseline")))
    assert not baselines, f"make repro would run comparison methods although run_baselines is false: {baselines[:4]}"


def test_report_times_make_repro_as_the_makefile_runs_it():
    "The report's `make repro` minutes count the runs of the Makefile's default REPRO_METHODS."
    from chimle.report import REPRO_METHODS
    m = re.search(r"^REPRO_METHODS \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m and tuple(m.group(1).split()) == REPRO_METHODS
