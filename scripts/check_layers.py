#!/usr/bin/env python3
"""The layer check of `make lint`: no import circle and no arrow back up, in
the daemon (src/) and in the log service (logger/app). Standard library only.

Rust (src/): the order of the `mod NAME;` lines of src/lib.rs ranks the
top-level modules (a file or a folder), first the lowest. Every .rs file
under src/ but main.rs and lib.rs is read for the modules it refers to:
`use` items (grouped ones too: `use crate::{a, b::c}`), inline paths
(`crate::x::y(...)`, `super::x`, and `child::x` after `mod child;`), with
comments, strings and test code left out (`#[cfg(test)]` items, `mod tests`,
and the files of test modules). A path is followed through `pub use`
re-exports to the file that defines the item. A file may refer to top-level
modules ranked before its own and, within its own top-level module, to the
other files of it; and no files may refer to each other in a circle.

Python (logger/app): modules are files. `LAYERS` in the package's
__init__.py lists the layers, lowest first, each a tuple of module names
(a subpackage's name covers its files). A module may import modules of its
own layer and of those before it; the package's own __init__.py is below
every layer. Every import counts, those inside functions too (they close
circles all the same), and no module imports another's private (`_name`)
name.

Usage: scripts/check_layers.py [--graph] [--src DIR] [--package DIR]
Prints one line per tree when it passes, each problem when not (exit 1);
--graph also prints every edge (file -> file) found.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_REEXPORT_HOPS = 16


@dataclass
class Report:
    """What one tree's check found: its edges and what is wrong with them."""

    name: str
    files: int = 0
    layers: int = 0
    edges: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add_edge(self, source: str, target: str) -> None:
        if source != target:
            self.edges.setdefault(source, set()).add(target)

    @property
    def ok(self) -> bool:
        return not self.problems


def display(path: Path, base: Path) -> str:
    """The path as messages show it: from the repository's root when inside
    it, else from `base`."""
    path = path.resolve()
    return path.relative_to(ROOT if path.is_relative_to(ROOT) else base.resolve()).as_posix()


# --- circles (both languages) ----------------------------------------------------


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), sorted."""
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(components)


def shortest_cycle(edges: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside `within` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, ())):
                if child not in within:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in seen:
                    seen.add(child)
                    previous[child] = node
                    following.append(child)
        frontier = following
    return []


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One shortest circle through every file that is on one, without repeats
    (a circle is printed from its first file in sorted order), shortest first."""
    found: dict[tuple[str, ...], list[str]] = {}
    for component in strongly_connected(edges):
        if len(component) < 2:
            continue
        members = set(component)
        for node in component:
            cycle = shortest_cycle(edges, node, members)
            ring = cycle[:-1]
            first = ring.index(min(ring))
            ring = ring[first:] + ring[:first]
            found.setdefault(tuple(ring), [*ring, ring[0]])
    return sorted(found.values(), key=lambda c: (len(c), c))


def report_circles(report: Report) -> None:
    for cycle in circles(report.edges):
        report.problems.append("circle: " + " -> ".join(cycle))


# --- Rust ----------------------------------------------------------------------------


def blank(text: str, start: int, end: int) -> str:
    """text with [start, end) replaced by spaces, its newlines kept."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


RAW_STRING = re.compile(r'b?r(#*)"')


def literal_end(text: str, i: int) -> int | None:
    """Where the comment, string or char literal starting at i ends; None
    when none starts there (a lifetime `'a` is not a literal)."""
    n = len(text)
    if text.startswith("//", i):
        end = text.find("\n", i)
        return n if end < 0 else end
    if text.startswith("/*", i):
        depth, j = 1, i + 2
        while j < n and depth:
            if text.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif text.startswith("*/", j):
                depth, j = depth - 1, j + 2
            else:
                j += 1
        return j
    raw = RAW_STRING.match(text, i)
    if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
        closing = '"' + raw.group(1)
        end = text.find(closing, raw.end())
        return n if end < 0 else end + len(closing)
    if text[i] == '"':
        j = i + 1
        while j < n and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        return min(j + 1, n)
    if text[i] == "'":
        return char_end(text, i)
    return None


def char_end(text: str, i: int) -> int | None:
    """Where the char literal at i ends ('a', '\\n', '\\'', '\\u{1F600}'); None
    for a lifetime ('a, 'static)."""
    if text.startswith("\\", i + 1):
        end = text.find("'", i + 3)
        return len(text) if end < 0 else end + 1
    if i + 2 < len(text) and text[i + 2] == "'":
        return i + 3
    return None


def strip_rust(text: str) -> str:
    """The code with comments, string and char literals blanked out (same
    length, same lines), so that only code is searched."""
    out = list(text)
    i = 0
    while i < len(text):
        end = literal_end(text, i)
        if end is None:
            i += 1
            continue
        for k in range(i, end):
            if out[k] != "\n":
                out[k] = " "
        i = end
    return "".join(out)


def item_end(code: str, start: int) -> int:
    """The end of the item starting at `start`: after its `;` outside any
    brackets, or after the `}` that closes its body."""
    depth = 0
    for k in range(start, len(code)):
        ch = code[k]
        if ch == ";" and depth == 0:
            return k + 1
        if ch in "({[":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(code)


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
FILE_CFG_TEST = re.compile(r"#!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ATTRIBUTE = re.compile(r"\s*#\s*\[[^\]]*\]")
SPACE = re.compile(r"\s*")
MOD_DECL = re.compile(r"(?<![\w:])(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(\w+)\s*(;|\{)")
USE_ITEM = re.compile(r"(?<![\w:])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]+);")


def drop_test_code(code: str) -> tuple[str, set[str]]:
    """The code without test items (`#[cfg(test)]` items and `mod tests`), and
    the names of the out-of-line test modules it declares (`mod x;`)."""
    test_mods: set[str] = set()
    while m := CFG_TEST.search(code):
        start = m.end()
        while a := ATTRIBUTE.match(code, start):
            start = a.end()
        start = SPACE.match(code, start).end()
        decl = MOD_DECL.match(code, start)
        if decl and decl.group(2) == ";":
            test_mods.add(decl.group(1))
        code = blank(code, m.start(), item_end(code, start))
    for m in list(MOD_DECL.finditer(code)):
        if m.group(1) == "tests":
            test_mods.add("tests")
            code = blank(code, m.start(), item_end(code, m.start()))
    return code, test_mods


def use_tree(tree: str) -> list[tuple[list[str], str | None]]:
    """The paths of a use tree, with their `as` names:
    `crate::{a, b::{c as d, self}}` gives crate::a, crate::b::c as d, crate::b."""
    tokens = re.findall(r"::|[{},*]|\w+", tree)
    pos = 0

    def parse(prefix: list[str]) -> list[tuple[list[str], str | None]]:
        nonlocal pos
        segments = list(prefix)
        while pos < len(tokens):
            piece = tokens[pos]
            if piece == "::":
                pos += 1
            elif piece == "{":
                pos += 1
                entries: list[tuple[list[str], str | None]] = []
                while pos < len(tokens) and tokens[pos] != "}":
                    entries += parse(segments)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return entries
            elif piece == "*":
                pos += 1
                return [([*segments, "*"], None)]
            elif piece in {",", "}"}:
                break
            else:
                pos += 1
                if piece != "self" or not segments:
                    segments.append(piece)
                if pos < len(tokens) and tokens[pos] == "as":
                    pos += 2
                    return [(segments, tokens[pos - 1])]
                if pos >= len(tokens) or tokens[pos] != "::":
                    return [(segments, None)]
        return [(segments, None)] if segments != list(prefix) else []

    out: list[tuple[list[str], str | None]] = []
    while pos < len(tokens):
        before = pos
        out += parse([])
        if pos < len(tokens) and tokens[pos] == ",":
            pos += 1
        if pos == before:
            pos += 1
    return out


@dataclass
class RustFile:
    rel: str  # path shown in messages, e.g. src/config.rs
    module: tuple[str, ...]  # ("collect", "procfs"); () for lib.rs
    code: str  # comments, strings and test code blanked out
    children: set[str] = field(default_factory=set)
    uses: list[tuple[list[str], int]] = field(default_factory=list)
    inline: list[tuple[list[str], int]] = field(default_factory=list)
    reexports: dict[str, list[str]] = field(default_factory=dict)
    globs: list[list[str]] = field(default_factory=list)

    def line_of(self, offset: int) -> int:
        return self.code.count("\n", 0, offset) + 1

    def holds(self, name: str) -> bool:
        return self.defines(name) or name in self.reexports

    def defines(self, name: str) -> bool:
        pattern = (
            rf"(?<![\w:])(?:fn|struct|enum|union|trait|type|const|static|mod)\s+{name}\b"
            rf"|macro_rules!\s*{name}\b"
        )
        return re.search(pattern, self.code) is not None


def module_of(path: Path, src: Path) -> tuple[str, ...]:
    """src/a/b.rs and src/a/b/mod.rs are a::b; src/lib.rs is the root."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or parts in (["lib"], ["main"]):
        parts.pop()
    return tuple(parts)


def absolute(file: RustFile, segments: list[str]) -> list[str] | None:
    """The path from the crate root, or None for another crate's."""
    head = segments[0]
    if head == "crate":
        return segments[1:]
    if head in {"self", "super"}:
        base = list(file.module)
        rest = segments
        if rest[0] == "self":
            rest = rest[1:]
        while rest and rest[0] == "super":
            if not base:
                return None
            base.pop()
            rest = rest[1:]
        return base + rest
    if head in file.children:
        return [*file.module, *segments]
    return None


def read_references(file: RustFile) -> None:
    """Fills in the file's child modules, use items (and which of them are
    re-exports) and inline paths."""
    file.children = {m.group(1) for m in MOD_DECL.finditer(file.code)}
    code = file.code
    for m in USE_ITEM.finditer(file.code):
        line = file.line_of(m.start())
        for segments, alias in use_tree(m.group(2)):
            if not segments:
                continue
            file.uses.append((segments, line))
            if m.group(1):
                if segments[-1] == "*":
                    file.globs.append(segments[:-1])
                else:
                    file.reexports[alias or segments[-1]] = segments
        code = blank(code, m.start(), m.end())
    heads = "crate|self|super" + "".join(f"|{re.escape(c)}" for c in sorted(file.children))
    for m in re.finditer(rf"(?<![\w:])(?:{heads})(?:::\w+)+", code):
        file.inline.append((m.group(0).split("::"), file.line_of(m.start())))


def read_rust(src: Path) -> tuple[dict[tuple[str, ...], RustFile], list[str]]:
    """Every non-test .rs file under src by module path, and the module order
    of lib.rs."""
    files: dict[tuple[str, ...], RustFile] = {}
    test_files: set[tuple[str, ...]] = set()
    for path in sorted(src.rglob("*.rs")):
        module = module_of(path, src)
        if "tests" in module or module[:1] == ("bin",):
            continue  # test code may reach anywhere; binaries are like main.rs
        code = strip_rust(path.read_text(encoding="utf-8"))
        if FILE_CFG_TEST.search(code):
            test_files.add(module)  # #![cfg(test)]: the whole file is test code
            continue
        code, test_mods = drop_test_code(code)
        test_files |= {(*module, name) for name in test_mods}
        rel = display(path, src.parent)
        if path.name == "main.rs" and len(module) == 0:
            continue
        files[module] = RustFile(rel, module, code)
    for module in list(files):
        if any(module[: len(test)] == test for test in test_files):
            del files[module]  # a test module's file, or one of its children
    for file in files.values():
        read_references(file)
    root = files.get(())
    order = [m.group(1) for m in MOD_DECL.finditer(root.code)] if root else []
    return files, order


def locate(
    files: dict[tuple[str, ...], RustFile], path: list[str], hops: int = 0
) -> RustFile | None:
    """The file that holds what `path` (from the crate root) names, through
    `pub use` re-exports."""
    for cut in range(len(path), -1, -1):
        file = files.get(tuple(path[:cut]))
        if file is None:
            continue
        rest = path[cut:]
        if not rest or hops >= MAX_REEXPORT_HOPS or file.defines(rest[0]):
            return file
        target = file.reexports.get(rest[0])
        if target is not None:
            full = absolute(file, target)
            if full is not None:
                return locate(files, full + rest[1:], hops + 1) or file
        for glob in file.globs:
            full = absolute(file, glob)
            holder = files.get(tuple(full)) if full is not None else None
            if holder is not None and holder is not file and holder.holds(rest[0]):
                return locate(files, full + rest, hops + 1) or file
        return file
    return None


def check_rust(src: Path, name: str | None = None) -> Report:
    report = Report(name or src.as_posix())
    files, order = read_rust(src)
    if () not in files:
        report.problems.append(f"{src}/lib.rs: not found")
        return report
    rank = {module: i for i, module in enumerate(order)}
    report.layers = len(order)
    report.files = len(files) - 1
    # (file, its module, the module above) -> (line, path) of each use
    upward: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for file in files.values():
        if not file.module:
            continue  # lib.rs only declares and re-exports
        top = file.module[0]
        if top not in rank:
            report.problems.append(f"{file.rel}: `{top}` is not declared in lib.rs")
            continue
        for segments, line in file.uses + file.inline:
            path = absolute(file, segments)
            if path is None:
                continue
            if path and path[-1] == "*":
                path = path[:-1]
            target = locate(files, path)
            if target is None or target is file or not target.module:
                continue
            report.add_edge(file.rel, target.rel)
            above = target.module[0]
            if above != top and rank.get(above, -1) > rank[top]:
                upward.setdefault((file.rel, top, above), []).append((line, "::".join(segments)))
    for (rel, top, above), uses in sorted(upward.items()):
        line, path = min(uses)
        more = f" and {len(uses) - 1} more" if len(uses) > 1 else ""
        report.problems.append(
            f"arrow back up: {rel} -> {above} (listed after {top} in lib.rs):"
            f" {path} at line {line}{more}"
        )
    report_circles(report)
    return report


# --- Python --------------------------------------------------------------------------


def python_modules(package: Path) -> dict[str, Path]:
    """Module name relative to the package ('' for its __init__.py,
    'routers' for routers/__init__.py, 'routers.logs') -> file."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def declared_layers(init: Path) -> list[tuple[str, ...]]:
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "LAYERS" for t in node.targets
        ):
            return [tuple(layer) for layer in ast.literal_eval(node.value)]
    raise ValueError(f"{init}: no LAYERS = (...) found")


def layer_of(module: str, layers: list[tuple[str, ...]]) -> int | None:
    """The layer of `module`: the one naming it or, failing that, its nearest
    enclosing subpackage; -1 for the package's own __init__."""
    if module == "":
        return -1
    best: tuple[int, int] | None = None  # (length of the name matched, layer)
    for i, layer in enumerate(layers):
        for name in layer:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > best[0]
            ):
                best = (len(name), i)
    return None if best is None else best[1]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def python_imports(
    module: str, path: Path, package_name: str, modules: dict[str, Path]
) -> Iterable[tuple[str, int, str | None]]:
    """(imported module, line, private name taken from it or None) for every
    import of the package's own modules in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    here = module.split(".") if module else []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package_name:
                    yield ".".join(parts[1:]), node.lineno, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == package_name:
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                submodule = ".".join([*target, alias.name])
                if submodule in modules:
                    yield submodule, node.lineno, None
                else:
                    private = alias.name if is_private(alias.name) else None
                    yield ".".join(target), node.lineno, private


def check_python(package: Path, name: str | None = None) -> Report:
    report = Report(name or package.as_posix())
    modules = python_modules(package)
    init = package / "__init__.py"
    try:
        layers = declared_layers(init)
    except (OSError, ValueError, SyntaxError) as exc:
        report.problems.append(f"no layers: {exc}")
        return report
    report.layers = len(layers)
    report.files = len(modules)
    for layer in layers:
        for named in layer:
            if not any(m == named or m.startswith(named + ".") for m in modules):
                report.problems.append(f"LAYERS names {named}, which is no module")
    shown = {m: display(p, package.parent) for m, p in modules.items()}
    for module, path in modules.items():
        own = layer_of(module, layers)
        if own is None:
            report.problems.append(f"{shown[module]}: in no layer of LAYERS ({shown['']})")
            continue
        for target, line, private in python_imports(module, path, package.name, modules):
            if target not in modules or target == module:
                continue
            report.add_edge(shown[module], shown[target])
            if private:
                report.problems.append(
                    f"private name: {shown[module]}:{line} imports {private} from {shown[target]}"
                )
            theirs = layer_of(target, layers)
            if theirs is not None and theirs > own:
                report.problems.append(
                    f"arrow back up: {shown[module]}:{line} imports {shown[target]} "
                    f"(layer {theirs + 1} of LAYERS, above its own {own + 1})"
                )
    report.problems = sorted(set(report.problems))
    report_circles(report)
    return report


# --- command line ---------------------------------------------------------------------


def print_report(report: Report, graph: bool) -> None:
    if graph:
        for source in sorted(report.edges):
            for target in sorted(report.edges[source]):
                print(f"{source} -> {target}")
    if report.ok:
        edges = sum(len(t) for t in report.edges.values())
        print(
            f"{report.name}: {report.files} files, {edges} edges, {report.layers} layers:"
            " no circle, no arrow back up"
        )
    else:
        for problem in report.problems:
            print(f"{report.name}: {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="also print every edge found")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the Rust crate's src/")
    parser.add_argument(
        "--package", type=Path, default=ROOT / "logger" / "app", help="the Python package"
    )
    args = parser.parse_args(argv)
    reports = [
        check_rust(args.src, "src" if args.src == ROOT / "src" else None),
        check_python(args.package, "logger/app" if args.package == ROOT / "logger/app" else None),
    ]
    for report in reports:
        print_report(report, args.graph)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
