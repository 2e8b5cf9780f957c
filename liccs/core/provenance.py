"""Which code made a result: the sha256 of every liccs module a process imported (of its code: docstrings, comments
and layout left out), and the check of a report against the code as it is now (``liccs reports status``).

A report records :func:`code_record` in its manifest when it is written. Later, :func:`staleness` recomputes the
hashes of those files: a report whose modules all hash the same is *current*; one whose modules changed (or were
removed) is *stale*, with the changed files named; a manifest without the record is *unknown* (written before the
record existed), which is reported as stale too, since nothing proves it current.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The package's folder: module paths in a record are relative to its parent (``liccs/attack/pgd.py``).
PACKAGE = Path(__file__).resolve().parents[1]


#: How a module is hashed: its syntax tree without docstrings, so that a change of documentation, comments or layout
#: leaves a report current; only a change of what the code does makes it stale. Files that are not Python: their bytes.
METHOD = "ast-without-docstrings"


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_hash(path: Path, method: str = METHOD) -> str:
    """sha256 of a source file as :data:`METHOD` reads it (a Python file's syntax tree without docstrings)."""
    data = path.read_bytes()
    if method == METHOD and path.suffix == ".py":
        try:
            tree = _strip_docstrings(ast.parse(data, filename=str(path)))
            data = ast.dump(tree, include_attributes=False).encode()
        except (SyntaxError, ValueError):
            pass  # not parseable: its bytes
    return hashlib.sha256(data).hexdigest()


def _loaded_files() -> list[Path]:
    files = set()
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if (name == "liccs" or name.startswith("liccs.")) and f and f.endswith(".py"):
            p = Path(f).resolve()
            if p.is_relative_to(PACKAGE):
                files.add(p)
    return sorted(files)


def code_record(extra: list[Path] | tuple[Path, ...] = ()) -> dict[str, Any]:
    """sha256 of every liccs module this process imported (and of ``extra`` files inside the package, such as
    the run's config), by path relative to the package's parent; ``all`` hashes them together."""
    files = {str(p.relative_to(PACKAGE.parent)): source_hash(p) for p in _loaded_files()}
    for p in extra:
        p = Path(p).resolve()
        if p.is_file() and p.is_relative_to(PACKAGE):
            files[str(p.relative_to(PACKAGE.parent))] = source_hash(p)
    total = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"method": METHOD, "all": total, "files": dict(sorted(files.items()))}


@dataclass(frozen=True)
class Staleness:
    """A report folder against the code now: ``status`` current | stale | unknown, and the files that changed."""

    report: str
    status: str
    changed: tuple[str, ...] = ()
    why: str = ""


def staleness(report: Path, root: Path = PACKAGE.parent) -> Staleness:
    """Whether the code that made ``report`` (its manifest's ``code`` record) is the code under ``root`` now."""
    path = report / "manifest.json"
    try:
        man = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        return Staleness(str(report), "unknown", why=f"{path}: not a readable manifest ({type(e).__name__})")
    record = man.get("code") if isinstance(man, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return _by_commit(report, man, root)
    changed = []
    method = str(record.get("method", "bytes"))
    for rel, sha in record["files"].items():
        p = root / rel
        if not p.is_file():
            changed.append(f"{rel} (removed)")
        elif source_hash(p, method) != sha:
            changed.append(rel)
    if changed:
        return Staleness(str(report), "stale", tuple(changed), f"{len(changed)} of {len(record['files'])} modules "
                                                              "it ran changed since")
    return Staleness(str(report), "current", why=f"all {len(record['files'])} modules it ran are unchanged")


def _by_commit(report: Path, man: Any, root: Path) -> Staleness:
    """For a manifest without code hashes: the package files git says changed since the commit it records."""
    commit = str(man.get("commit") or "") if isinstance(man, dict) else ""
    sha = commit.removesuffix("-dirty")
    try:
        out = subprocess.run(["git", "-C", str(root), "diff", "--name-only", sha, "HEAD", "--", PACKAGE.name],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        out = None
    if not sha or out is None or out.returncode != 0:
        return Staleness(str(report), "unknown", why="its manifest records no code hashes and no commit this "
                                                     "checkout has: regenerate it to know")
    changed = tuple(line for line in out.stdout.splitlines() if line.endswith(".py") or line.endswith(".toml"))
    dirty = " (and its tree had uncommitted changes)" if commit.endswith("-dirty") else ""
    if changed:
        return Staleness(str(report), "stale", changed, f"{len(changed)} package files changed since its commit "
                                                        f"{sha[:12]}{dirty}; it records no per-module hashes")
    return Staleness(str(report), "unknown", why=f"no package file changed since its commit {sha[:12]}{dirty}, "
                                                 "but it records no per-module hashes")
