"""Print consentgate's package import graph and its largest modules and classes.

    python tools/import_graph.py             # the working tree
    python tools/import_graph.py --rev REV   # any commit, read with `git show`

Used for the architecture issue's before/after figures; every import counts,
including the lazy ones inside functions (that is what import-linter checks too).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sources(rev: str | None) -> dict[str, str]:
    """Module name -> source, for every consentgate module at ``rev`` (or on disk)."""
    if rev is None:
        files = {
            p.relative_to(ROOT).as_posix(): p.read_text() for p in ROOT.glob("consentgate/**/*.py")
        }
    else:
        names = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", rev, "consentgate"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        files = {
            n: subprocess.run(
                ["git", "show", f"{rev}:{n}"], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
            for n in names
            if n.endswith(".py")
        }
    modules = {}
    for path, text in files.items():
        name = path[:-3].replace("/", ".")
        modules[name.removesuffix(".__init__")] = text
    return modules


def imports(text: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in found if n.startswith("consentgate")}


def part(module: str) -> str:
    """The package a module belongs to: consentgate.core, .store, .web, ... or itself."""
    pieces = module.split(".")
    return ".".join(pieces[:2]) if len(pieces) > 2 else module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision instead of the working tree")
    args = parser.parse_args()
    modules = sources(args.rev)
    edges: Counter[tuple[str, str]] = Counter()
    for name, text in modules.items():
        targets = set()
        for imported in imports(text):
            target = imported
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # `from pkg import name` names an attribute
            targets.add(target)
        for target in targets:
            if target in modules and part(target) != part(name):
                edges[(part(name), part(target))] += 1
    sizes = sorted(((len(t.splitlines()), n) for n, t in modules.items()), reverse=True)
    classes = []
    for name, text in modules.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                classes.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    classes.sort(reverse=True)
    parts = Counter(part(n) for n in modules)
    total = sum(len(t.splitlines()) for t in modules.values())
    print(f"{len(modules)} modules in {len(parts)} parts, {total} lines")
    print("\nparts (modules):")
    for name, count in sorted(parts.items()):
        print(f"  {name:32} {count}")
    print("\nimports between parts (importer -> imported: module pairs):")
    for (source, target), count in sorted(edges.items()):
        print(f"  {source:32} -> {target:32} {count}")
    print("\nlargest modules (lines):")
    for lines, name in sizes[:5]:
        print(f"  {lines:5}  {name}")
    print("\nlargest classes (lines):")
    for lines, name in classes[:5]:
        print(f"  {lines:5}  {name}")


if __name__ == "__main__":
    main()
