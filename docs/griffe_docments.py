"""A Griffe extension (for mkdocstrings-python, see mkdocs.yml) that reads nbdev's docments statically.

nbdev documents each parameter with a trailing comment on its line (fastcore's docments), and show_doc draws them as
a table. Griffe reads docstrings only; this extension adds, to each function whose signature carries such comments,
a Parameters section (name, type, default, the comment) and a Returns section for a comment on the `-> type` line,
unless its docstring already has them. A module or class attribute with no docstring gets the comment of its line
(`LEVELS = 4  # the tower's levels`, dataclass fields). Nothing is imported: the comments come from the source's tokens.
"""
from __future__ import annotations

import ast
import io
import tokenize
from functools import lru_cache
from pathlib import Path

import griffe


@lru_cache(maxsize=None)
def _comments(path: str) -> tuple[dict, frozenset]:
    "A file's comments by line ({line: text}) and the lines that hold code."
    comments, code = {}, set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(Path(path).read_text(encoding="utf-8")).readline):
            if tok.type == tokenize.COMMENT: comments[tok.start[0]] = tok.string.lstrip("#").strip()
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
                code.update(range(tok.start[0], tok.end[0] + 1))
    except (tokenize.TokenError, IndentationError, SyntaxError, OSError):
        pass
    return comments, frozenset(code)


def _path(obj) -> str | None:
    try: p = obj.filepath
    except Exception: return None  # noqa: BLE001 (a builtin or namespace object: no file)
    return str(p) if isinstance(p, (str, Path)) else None


def docments(node: ast.AST, path: str) -> dict:
    "{parameter or 'return': its trailing comment} of a function node's signature."
    comments, code = _comments(path)
    args = node.args
    params = [*args.posonlyargs, *args.args, *([args.vararg] if args.vararg else []), *args.kwonlyargs,
              *([args.kwarg] if args.kwarg else [])]
    end = node.body[0].lineno if node.body else node.end_lineno + 1   # the body's first line is not the signature's
    found, last = {}, None
    for line in range(node.lineno, end):
        on_line = [p for p in params if p.lineno == line]
        if on_line: last = max(on_line, key=lambda p: p.col_offset).arg
        if line not in comments: continue
        if on_line: found[last] = comments[line]
        elif node.returns is not None and node.returns.lineno == line: found["return"] = comments[line]
        elif last is not None and line not in code: found[last] = f"{found.get(last, '')} {comments[line]}".strip()
    return found


class Docments(griffe.Extension):
    def on_function_instance(self, *, node, func, agent, **kwargs) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (path := _path(func)):
            if found := docments(node, path): func.extra["docments"] = found

    def on_function(self, *, func, loader, **kwargs) -> None:
        found = func.extra.get("docments")
        if not found: return
        if func.docstring is None:
            func.docstring = griffe.Docstring("", parent=func, parser=loader.docstring_parser,
                                              parser_options=loader.docstring_options)
        sections = func.docstring.parse()
        kinds = {s.kind for s in sections}
        params = [p for p in func.parameters if p.name not in ("self", "cls")]
        if griffe.DocstringSectionKind.parameters not in kinds and any(p.name in found for p in params):
            sections.append(griffe.DocstringSectionParameters([
                griffe.DocstringParameter(p.name if p.kind.value not in ("variadic positional", "variadic keyword")
                                          else ("*" if p.kind.value == "variadic positional" else "**") + p.name,
                                          description=found.get(p.name, ""), annotation=p.annotation, value=p.default)
                for p in params]))
        if "return" in found and griffe.DocstringSectionKind.returns not in kinds:
            sections.append(griffe.DocstringSectionReturns([
                griffe.DocstringReturn("", description=found["return"], annotation=func.returns)]))
        func.docstring.__dict__["parsed"] = sections   # what the templates read (a cached property)

    def on_attribute_instance(self, *, node, attr, agent, **kwargs) -> None:
        if attr.docstring is not None or not isinstance(node, (ast.Assign, ast.AnnAssign)): return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if not all(isinstance(t, ast.Name) for t in targets) or not (path := _path(attr)): return
        comment = _comments(path)[0].get(node.lineno)
        if comment and node.lineno == node.end_lineno:
            attr.docstring = griffe.Docstring(comment, lineno=node.lineno, endlineno=node.lineno, parent=attr,
                                              parser=agent.docstring_parser, parser_options=agent.docstring_options)
