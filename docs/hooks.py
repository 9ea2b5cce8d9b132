"""MkDocs hooks that make chimle's documentation site from the notebooks, at build time and without running them.

Every nbs/*.ipynb becomes a page NAME.html: its prose, its code and the outputs stored in it (rendered as they are),
with the API of the module it exports (its `#| default_exp` cell) placed as nbdev's show_doc places it, after the
`#| export` cell that defines each exported name (mkdocstrings `:::` blocks, read statically by griffe; the exported
code itself is folded under "source"). The list of pages, the nav, the notebook -> module map and the index's
contents are all read from nbs/ here, so renamed or new notebooks need no edit of the site. README.md and each
runs/PROFILE/report/report.md become pages too (the images they show copied along). nbs/exp/ (the pipeline's
papermill stage notebooks, committed without outputs) are listed on the index, not rendered.

Math ($...$, $$...$$) becomes MathML at build time (latex2mathml): the browser draws it with no script and nothing
fetched from elsewhere.
"""
from __future__ import annotations

import ast
import base64
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import latex2mathml.converter
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

LIB = "chimle"
IMAGE_MIMES = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
EXPORTS = {"export", "exports", "exporti"}   # nbdev directives of cells whose code goes to the module
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TOKEN = "NBOUTPUT{:04d}Z"                      # one stored output, swapped for its HTML after Markdown
TOKEN_P = re.compile(r"<p>(NBOUTPUT\d{4}Z)</p>")


@dataclass
class Notebook:
    path: Path
    module: str | None       # the `#| default_exp` name, e.g. "tim" for chimle.tim
    title: str
    summary: str
    cells: list = field(repr=False)

    @property
    def stem(self): return self.path.stem
    @property
    def page(self): return f"{self.stem}.md"
    @property
    def group(self):
        m = re.match(r"\d+", self.stem)
        return m.group(0) if m else "other"


@dataclass
class Site:
    root: Path
    notebooks: list
    stage_notebooks: list    # nbs/exp/*.ipynb, listed only
    reports: dict            # page -> report.md path
    outputs: dict = field(default_factory=dict)   # page -> {token: html}
    extra_md: dict = field(default_factory=dict)  # generated page -> markdown
    copies: dict = field(default_factory=dict)    # site path -> source file
    blobs: dict = field(default_factory=dict)     # site path -> bytes (the notebooks' stored images)


SITE: Site | None = None


# ---------------------------------------------------------------- reading the notebooks

def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _directives(src: str) -> tuple[dict, str]:
    "nbdev's `#| name args` lines at the top of a code cell, and the code without them."
    found, lines = {}, src.splitlines()
    while lines and (m := re.match(r"\s*#\s*\|\s*([\w-]+):?\s*(.*)", lines[0])):
        found[m.group(1)] = m.group(2).strip()
        lines.pop(0)
    return found, "\n".join(lines).strip("\n")


def read_notebook(path: Path) -> Notebook:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    module = title = summary = None
    for c in cells:
        if c["cell_type"] == "code" and module is None:
            d, _ = _directives(_src(c))
            if d.get("default_exp"): module = d["default_exp"].split()[0]
        if c["cell_type"] == "markdown" and title is None:
            text = _src(c)
            if m := re.search(r"^#\s+(.+)$", text, re.M): title = m.group(1).strip()
            if m := re.search(r"^>\s*(.+)$", text, re.M): summary = m.group(1).strip()
    return Notebook(path, module, title or path.stem, summary or "", cells)


def module_names(root: Path, module: str) -> tuple[set, list | None]:
    "The top-level names the exported module defines (read statically), and its __all__ (None when absent)."
    path = root / LIB / (module.replace(".", "/") + ".py")
    if not path.exists(): return set(), None
    try: tree = ast.parse(path.read_text(encoding="utf-8"))
    except SyntaxError: return set(), None
    names, all_ = set(), None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name):
                    names.add(t.id)
                    if t.id == "__all__":
                        try: all_ = list(ast.literal_eval(node.value))
                        except ValueError: pass
    return names, all_


def cell_defs(code: str) -> list[str]:
    "The names a cell defines at top level (functions, classes, plain assignments), in order; not @patch methods."
    try: tree = ast.parse(code)
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any((isinstance(d, ast.Name) and d.id.startswith("patch")) or
                   (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id.startswith("patch"))
                   for d in node.decorator_list): continue
            out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            out += [t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]
    return out


# ---------------------------------------------------------------- Markdown as Jupyter writes it

FENCE = re.compile(r"^\s*(```|~~~)")
ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+\S")


def commonmark_fixes(text: str) -> str:
    """Jupyter renders CommonMark; Python-Markdown wants a blank line before a list or table that follows a
    paragraph, and nested list items indented by 4. Code fences are left alone."""
    out, fenced, prev = [], False, ""
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            if fenced and prev.strip(): out.append("")
        elif not fenced:
            m = ITEM.match(line)
            if m and 0 < len(m.group(1)) < 4:
                line = " " * (2 * len(m.group(1))) + line.lstrip()
            starts_table = line.lstrip().startswith("|") and not prev.lstrip().startswith("|")
            if (m or starts_table) and prev.strip() and not ITEM.match(prev) and not prev.startswith(" "):
                out.append("")
        out.append(line)
        prev = line
    return "\n".join(out)


def _clean_text(s: str) -> str:
    s = ANSI.sub("", s)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in s.split("\n"))   # progress bars: their last state


def _join(v) -> str: return "".join(v) if isinstance(v, list) else v


def render_output(o: dict, stem: str, ci: int, oi: int, site: Site) -> str | None:
    "One stored output as HTML (images written as files beside the page)."
    kind = o.get("output_type")
    if kind == "stream":
        cls = "nb-stream nb-stderr" if o.get("name") == "stderr" else "nb-stream"
        return f'<pre class="{cls}">{html.escape(_clean_text(_join(o.get("text", ""))).rstrip())}</pre>'
    if kind == "error":
        return f'<pre class="nb-error">{html.escape(_clean_text(chr(10).join(o.get("traceback", []))))}</pre>'
    data = o.get("data", {})
    for mime, ext in IMAGE_MIMES.items():
        if mime in data:
            name = f"{stem}_files/output_{ci}_{oi}.{ext}"
            site.blobs[name] = base64.b64decode(_join(data[mime]))
            alt = html.escape(_join(data.get("text/plain", "output")).strip()[:120], quote=True)
            return f'<img class="nb-image" src="{name}" alt="{alt}">'
    if "image/svg+xml" in data: return f'<div class="nb-svg">{_join(data["image/svg+xml"])}</div>'
    if "text/html" in data: return f'<div class="nb-html">{_join(data["text/html"])}</div>'
    if "text/plain" in data: return f'<pre class="nb-text">{html.escape(_clean_text(_join(data["text/plain"])).rstrip())}</pre>'
    return None  # widgets and other kinds the page cannot show without a kernel


def notebook_markdown(nb: Notebook, site: Site, pages: dict) -> str:
    "The page of one notebook: prose, code, stored outputs (as tokens), API blocks after the cells that export."
    outputs = site.outputs.setdefault(nb.page, {})
    names, all_ = module_names(site.root, nb.module) if nb.module else (set(), None)
    public = (lambda n: n in all_) if all_ is not None else (lambda n: not n.startswith("_"))
    placed, parts = set(), []

    def api(name):
        if name in placed or name not in names or not public(name): return
        placed.add(name)
        parts.append(f"::: {LIB}.{nb.module}.{name}\n")

    def fold(code, title="source", open_=False):
        body = "\n".join("    " + line for line in f"```python\n{code}\n```".splitlines())
        parts.append(f'???{"+" if open_ else ""} quote "{title}"\n\n{body}\n')

    for ci, c in enumerate(nb.cells):
        src = _src(c)
        if c["cell_type"] == "markdown":
            parts.append(relink(commonmark_fixes(src), nb.path.parent, site, pages) + "\n")
            if ci == next(i for i, x in enumerate(nb.cells) if x["cell_type"] == "markdown"):
                where = f"exports <code>{LIB}.{nb.module}</code>" if nb.module else "exports no module"
                parts.append(f'<p class="nb-origin">Notebook <code>nbs/{nb.path.name}</code> · {where}</p>\n')
            continue
        if c["cell_type"] != "code": continue
        d, code = _directives(src)
        if "default_exp" in d and not code: continue
        if "hide" in d or d.get("include") == "false": continue
        if EXPORTS & d.keys():
            for name in cell_defs(code) if "exporti" not in d else []: api(name)
            if code: fold(code, "source", open_="exports" in d)
        elif code and d.get("echo") != "false":
            parts.append(f"```python\n{code}\n```\n")
        if d.get("output") == "false": continue
        for oi, o in enumerate(c.get("outputs", [])):
            if (h := render_output(o, nb.stem, ci, oi, site)) is None: continue
            token = TOKEN.format(len(outputs))
            outputs[token] = f'<div class="nb-output">{h}</div>'
            parts.append(f"{token}\n")
    rest = [n for n in (all_ or []) if n not in placed and n in names]
    if rest:
        parts.append(f"## More of `{LIB}.{nb.module}`\n")
        for name in rest: api(name)
    if nb.module and not names:
        parts.append(f'!!! warning "API"\n    `{LIB}/{nb.module}.py` is not there: run `make export`.\n')
    return "\n".join(parts)


# ---------------------------------------------------------------- README and the report

LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\s+\"[^\"]*\")?\)")


def relink(text: str, base: Path, site: Site, pages: dict) -> str:
    """Markdown of the repository (in folder `base`) for the site: links to notebooks, the README and reports go to
    their pages; images come along into the site."""
    def one(m):
        target = m.group(2)
        if urlsplit(target).scheme or target.startswith(("#", "/")): return m.group(0)
        file, _, frag = target.partition("#")
        dest = (base / file).resolve()
        try: rel = dest.relative_to(site.root)
        except ValueError: return m.group(0)
        page = pages.get(str(rel))
        if page is None and dest.is_file() and dest.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}:
            if rel.parts[0] == "docs": page = str(rel.relative_to("docs"))   # already in the site
            else: page = f"files/{rel}"; site.copies[page] = dest
        if page is None: return m.group(0)
        return f"{m.group(1)}{page}{'#' + frag if frag else ''}{m.group(3) or ''})"
    return LINK.sub(one, text)


def repo_markdown(path: Path, site: Site, pages: dict) -> str:
    return relink(commonmark_fixes(path.read_text(encoding="utf-8")), path.parent, site, pages)


def index_contents(site: Site) -> str:
    lines = ["## Start here", "", "- [README](readme.md): the project, how to run it, its results and design"]
    for page, path in site.reports.items():
        lines.append(f"- [Results report, profile `{path.parents[1].name}`]({page}): "
                     f"`{path.relative_to(site.root)}`, written by the pipeline's report stage")
    lines += ["", "## Notebooks", "",
              "Each library notebook, grouped by its number: its prose, code and stored outputs, with the API of the "
              "module it exports.", ""]
    for group, nbs in _groups(site.notebooks).items():
        lines.append(f"### {group}")
        lines.append("")
        for nb in nbs:
            mod = f" · `{LIB}.{nb.module}`" if nb.module else ""
            summary = f": {nb.summary}" if nb.summary else ""
            lines.append(f"- [{nb.stem}]({nb.page}){mod}{summary}")
        lines.append("")
    if site.stage_notebooks:
        lines += ["## Pipeline stage notebooks", "",
                  "`nbs/exp/` holds the notebooks that DVC runs through papermill, one per stage (dvc.yaml). They are "
                  "committed without outputs, so they have no pages here; their executed copies go to "
                  "`runs/PROFILE/logs/`.", ""]
        lines += [f"- `nbs/exp/{p.name}`" for p in site.stage_notebooks]
    return "\n".join(lines) + "\n"


def _groups(notebooks) -> dict:
    groups = {}
    for nb in notebooks: groups.setdefault(nb.group, []).append(nb)
    return {f"{g} · {', '.join(nb.module or nb.title for nb in nbs)}": nbs for g, nbs in groups.items()}


# ---------------------------------------------------------------- math as MathML

class _Math(InlineProcessor):
    def __init__(self, pattern, md, display):
        super().__init__(pattern, md)
        self.display = display

    def handleMatch(self, m, data):
        tex = m.group(1).strip()
        try: out = latex2mathml.converter.convert(tex, display="block" if self.display else "inline")
        except Exception: out = f'<code class="nb-tex">{html.escape(tex)}</code>'  # noqa: BLE001 (any LaTeX it cannot read)
        return self.md.htmlStash.store(out), m.start(0), m.end(0)


class MathML(Extension):
    "$$...$$ and $...$ (not in code) to MathML; registered above escapes and emphasis, below code spans."
    def extendMarkdown(self, md):
        md.inlinePatterns.register(_Math(r"(?<!\\)\$\$(.+?)\$\$", md, True), "chimle_math_block", 186)
        md.inlinePatterns.register(_Math(r"(?<![\\$\w])\$(?![\s$])(.+?)(?<![\s\\])\$(?![\w$])", md, False),
                                   "chimle_math_inline", 185)


# ---------------------------------------------------------------- MkDocs events

def on_config(config):
    global SITE
    root = Path(config.config_file_path).resolve().parent
    nbs = sorted((root / "nbs").glob("*.ipynb"))
    notebooks = [read_notebook(p) for p in nbs]
    reports = {f"report-{p.parents[1].name}.md": p for p in sorted(root.glob("runs/*/report/report.md"))}
    SITE = Site(root, notebooks, sorted((root / "nbs" / "exp").glob("*.ipynb")), reports)
    nav = [{"Home": "index.md"}, {"README": "readme.md"}]
    nav += [{f"Report ({p.parents[1].name})": page} for page, p in reports.items()]
    nav.append({"Notebooks": [{g: group[0].page if len(group) == 1 else [{nb.stem: nb.page} for nb in group]}
                              for g, group in _groups(notebooks).items()]})
    config.nav = nav
    config.markdown_extensions.append(MathML())
    return config


def on_files(files, config):
    site = SITE
    pages = {str(nb.path.relative_to(site.root)): nb.page for nb in site.notebooks}
    pages["README.md"] = "readme.md"
    pages.update({str(p.relative_to(site.root)): page for page, p in site.reports.items()})
    for nb in site.notebooks:
        files.append(File.generated(config, nb.page, content=notebook_markdown(nb, site, pages)))
    files.append(File.generated(config, "readme.md", content=repo_markdown(site.root / "README.md", site, pages)))
    for page, path in site.reports.items():
        files.append(File.generated(config, page, content=repo_markdown(path, site, pages)))
    for name, data in site.blobs.items(): files.append(File.generated(config, name, content=data))
    for name, src in site.copies.items(): files.append(File.generated(config, name, abs_src_path=str(src)))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "index.md": return markdown.replace("<!-- contents -->", index_contents(SITE))
    return markdown


def on_page_content(html_, page, config, files):
    outputs = SITE.outputs.get(page.file.src_uri)
    return TOKEN_P.sub(lambda m: outputs.get(m.group(1), m.group(0)), html_) if outputs else html_


EXTERNAL = re.compile(r"""<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc=["']?(https?:)?//|"""
                      r"""<link\b[^>]*\bhref=["']?(https?:)?//""", re.I)


def on_post_page(output, page, config):
    "The site must work offline: a page that would load anything from another host stops the build, naming it."
    if m := EXTERNAL.search(output):
        raise PluginError(f"{page.file.src_uri} would load something from another host (the site must work "
                          f"offline): {m.group(0)[:200]}...")
    return output
