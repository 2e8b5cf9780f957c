"""MkDocs hook: the site's reference tables, generated from the code at build time so they cannot drift.

A page holds a marker ``<!-- liccs:NAME -->`` on a line of its own; :func:`on_page_markdown` replaces it with
``GENERATORS[NAME]()``. An unknown marker fails the build. Nothing generated is written to ``docs/``.

- ``config-reference``: every section and key of :class:`liccs.config.RunConfig` (``dataclasses.fields``), with its
  type, default, range check (``liccs.config._RANGES``) and the comment beside it in ``liccs/config/sections.py``.
- ``commands``: every subcommand of ``liccs.cli.build_parser()`` with its arguments.
- ``engines``: the engine registry (``liccs.engines.ENGINES``).
- ``attacks`` / ``objectives``: the attack registry (``liccs.attack.ATTACKS``, with each attack's own parameters)
  and the objective registry (``liccs.attack.OBJECTIVES``).
- ``builtin-configs``: the built-in run configs shipped in ``liccs/configs/``.
- ``codecs`` / ``classifiers``: the model zoo's registries (``liccs.zoo``).
- ``bitstream``: the byte layout of a ``.liccs`` container and of a frame (``liccs.engines.bitstream``'s structs).
- ``stats-rule``: how claims are tested and decided (the docstring of ``liccs.core.stats``).
- ``stages``: the stages of ``liccs run`` (``liccs.stage.STAGES``) in the order they run.

``python docs/_hooks/gen_pages.py NAME`` prints one of them.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import inspect
import io
import re
import sys
import tokenize
import types
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# a dependency's notice (torch deprecates torch.jit.script, which compressai's imports call), not the docs'
warnings.filterwarnings("ignore", message=".torch.jit.script. is deprecated", category=FutureWarning)

MARKER = re.compile(r"^<!-- liccs:([a-z-]+) -->$", re.M)


# --- docstring text → Markdown -----------------------------------------------------------------------------------
def md(text: str) -> str:
    """reST-flavoured docstring text as one Markdown paragraph: ``x`` → `x`, :class:`~a.b.C` → `C`."""
    def role(m: re.Match[str]) -> str:
        return f"`{m.group(1).split('.')[-1] if '~' in m.group(0) else m.group(1)}`"

    text = re.sub(r":[a-z]+:`~?([^`]+)`", role, text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return " ".join(text.split())


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def rich(text: str) -> str:
    """Docstring text for a table cell: :func:`md`, its code spans as HTML :func:`code`, other pipes escaped."""
    parts = re.split(r"`([^`]+)`", md(text))
    return "".join(code(p) if i % 2 else cell(p) for i, p in enumerate(parts))


def code(text: str) -> str:
    """Inline code safe inside a Markdown table cell (as HTML: a Markdown code span would keep the backslash of an
    escaped ``|``)."""
    return f"<code>{html.escape(text, quote=False).replace('|', '&#124;')}</code>" if text else ""


# --- config reference --------------------------------------------------------------------------------------------
def type_name(tp: Any) -> str:
    """A config annotation as it is written in TOML terms: ``"cpu" | "cuda"``, ``list[int]``, ``float | str``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any"
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin in (types.UnionType, typing.Union):
        return " | ".join(type_name(a) for a in args)
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is dict:
        return "table"
    return getattr(tp, "__name__", str(tp))


def toml_value(value: Any) -> str:
    """A default as TOML would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        if value != int(value) and abs(value * 255 - round(value * 255)) < 1e-9:
            return f'"{round(value * 255)}/255"'
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def field_comments(path: Path) -> dict[tuple[str, str], str]:
    """``(class, field) → the comment on that field's lines`` in a module's source."""
    source = path.read_text(encoding="utf-8")
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out: dict[tuple[str, str], str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    lines = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
                    text = " ".join(comments[i] for i in lines if i in comments)
                    if text:
                        out[(node.name, stmt.target.id)] = text
    return out


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def config_reference() -> str:
    import liccs.config as config
    import liccs.config.sections as sections

    comments = field_comments(Path(inspect.getfile(sections)))
    ranges = {(section, key): need for section, checks in config._RANGES.items() for key, _, need in checks}
    hints = typing.get_type_hints(config.RunConfig)
    lines: list[str] = []
    for section in dataclasses.fields(config.RunConfig):
        cls = hints[section.name]
        lines += [f"## `[{section.name}]`", ""]
        if not dataclasses.is_dataclass(cls):
            lines += [md(comments.get(("RunConfig", section.name), "")) or
                      "A table of dotted keys (`\"data.images\" = 4`) or nested tables, applied by `--quick`: "
                      "each must be a valid key of the sections above and is checked when the config loads.", ""]
            continue
        lines += [md(inspect.getdoc(cls) or ""), "", "| key | type | default | allowed | notes |",
                  "| --- | --- | --- | --- | --- |"]
        field_hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = default_of(f)
            lines.append(f"| `{f.name}` | {code(type_name(field_hints[f.name]))} | "
                         f"{code(toml_value(default)) if default is not dataclasses.MISSING else 'required'} | "
                         f"{cell(ranges.get((section.name, f.name), ''))} | "
                         f"{rich(comments.get((cls.__name__, f.name), ''))} |")
        lines.append("")
    return "\n".join(lines)


def builtin_configs() -> str:
    import liccs

    folder = Path(inspect.getfile(liccs)).parent / "configs"
    lines: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        head = []
        for ln in text.splitlines():  # the comment block the file starts with: its description
            if not ln.startswith("#"):
                break
            head.append(ln.lstrip("#").strip())
        summary = re.sub(r"\s*\(issue \d+\)", "", md(" ".join(head)))  # the project's tracker is not the docs'
        lines += [f"### `{path.stem}`", "", summary, "",
                  f'??? example "liccs/configs/{path.name}"', "", "    ```toml",
                  *[f"    {ln}".rstrip() for ln in text.splitlines()], "    ```", ""]
    return "\n".join(lines)


# --- commands ----------------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(a.option_strings) if a.option_strings else a.dest
        if a.option_strings and a.nargs != 0:
            name += f" {a.metavar or a.dest.upper()}"
        default = "" if a.default in (None, argparse.SUPPRESS, False) or a.nargs == 0 else repr(a.default)
        if a.required and a.option_strings:
            default = "required"
        choices = ", ".join(map(str, a.choices)) if a.choices else ""
        help_ = (a.help or "") % {**vars(a), "prog": parser.prog} if a.help and "%(" in a.help else (a.help or "")
        rows.append(f"| {code(name)} | {rich(help_)} | {code(default)} | {cell(choices)} |")
    return rows


def _command(prefix: str, name: str, help_: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    title = f"{prefix} {name}".strip()
    lines = [f"{'#' * level} `{title}`", "", md(help_) + ("." if help_ and not help_.endswith(".") else ""),
             "", "```text", parser.format_usage().strip(), "```", ""]
    rows = _argument_rows(parser)
    if rows:
        lines += ["| argument | what | default | choices |", "| --- | --- | --- | --- |", *rows, ""]
    for sub_name, sub_help, sub in _subparsers(parser):
        lines += _command(title, sub_name, sub_help, sub, level + 1)
    return lines


def commands() -> str:
    from liccs.cli import build_parser

    parser = build_parser()
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    lines = ["```text", parser.format_usage().strip(), "```", "", "Options of `liccs` itself (before the subcommand):",
             "", "| argument | what | default | choices |", "| --- | --- | --- | --- |", *_argument_rows(parser), ""]
    for name, help_, sub in _subparsers(parser):
        lines += _command("liccs", name, help_, sub, 2)
    return "\n".join(lines)


# --- registries --------------------------------------------------------------------------------------------------
def engines() -> str:
    from liccs.engines import ENGINES

    lines = ["| engine | backend | precision | device | needs | install |", "| --- | --- | --- | --- | --- | --- |"]
    for name in ENGINES.names():
        e = ENGINES.get(name)
        needs = [f"`{m}`" for m in e.requires] + (["a CUDA GPU"] if e.needs_cuda else []) + \
            [f"ORT `{p}`" for p in e.providers]
        lines.append(f"| `{name}` | {e.backend} | {e.precision} | {e.device} | {', '.join(needs)} | "
                     f"{cell(e.install_hint)} |")
    return "\n".join(lines) + "\n"


def _first_sentence(obj: Any) -> str:
    doc = md((inspect.getdoc(obj) or "").split("\n\n")[0])
    return doc


def attacks() -> str:
    from liccs.attack import ATTACKS
    from liccs.attack.base import attack_params

    lines = ["| name | class | what | paper | own parameters (`[attack.params]`, `--attack-param`) |",
             "| --- | --- | --- | --- | --- |"]
    for name in ATTACKS.names():
        cls = ATTACKS.get(name)
        params = ", ".join(f"`{k} = {toml_value(v)}`" for k, v in attack_params(name).items()) or "none"
        lines.append(f"| `{name}` | `{cls.__module__}.{cls.__name__}` | {rich(_first_sentence(cls))} | "
                     f"{cell(getattr(cls, 'paper', '') or '')} | {cell(params)} |")
    return "\n".join(lines) + "\n"


def objectives() -> str:
    from liccs.attack import OBJECTIVES

    lines = ["| name | objective |", "| --- | --- |"]
    for name in OBJECTIVES.names():
        entry = OBJECTIVES.get(name)
        try:
            obj = entry() if not isinstance(entry, type) else entry
        except TypeError:
            obj = entry
        cls = obj if isinstance(obj, type) else type(obj)
        args = ""
        if not isinstance(obj, type):
            shown = {k: v for k, v in vars(obj).items()
                     if isinstance(v, str) and not k.startswith("_") and k != "name"}
            args = "(" + ", ".join(f'{k}="{v}"' for k, v in shown.items()) + ")" if shown else ""
        lines.append(f"| `{name}` | `{cls.__name__}{args}`: {rich(_first_sentence(cls))} |")
    return "\n".join(lines) + "\n"


def codecs() -> str:
    from liccs.zoo import CODECS

    lines = ["| architecture | qualities | metrics | what |", "| --- | --- | --- | --- |"]
    for name in CODECS.names():
        e = CODECS.get(name)
        q = f"q{min(e.qualities)}…q{max(e.qualities)}" if list(e.qualities) == list(
            range(min(e.qualities), max(e.qualities) + 1)) else ", ".join(f"q{q}" for q in e.qualities)
        lines.append(f"| `{name}` | {q} | {', '.join(e.metrics)} | {rich(e.description)} |")
    return "\n".join(lines) + "\n"


def classifiers() -> str:
    from liccs.zoo import list_classifiers

    return ", ".join(f"`{n}`" for n in list_classifiers()) + "\n"


#: the meaning of each field of the bitstream's two headers, in the order of their struct formats
CONTAINER_FIELDS = [("magic", "`LICC`"), ("version", "container version (this liccs reads {version})"),
                    ("fingerprint", "the first 8 bytes of a sha256 over the codec's class, parameters and buffers"),
                    ("image height", "pixels"), ("image width", "pixels"),
                    ("latent height", "`z`'s with a hyperprior, else `y`'s"), ("latent width", "as above"),
                    ("strings", "how many frames follow (one per latent)")]
FRAME_FIELDS = [("magic", "`LF`"), ("checks", "how many entropy-table checksums follow"),
                ("payload length", "bytes of CompressAI's string")]
_STRUCT_TYPES = {"s": "bytes", "B": "u8", "H": "u16", "I": "u32"}


def _struct_rows(fmt: str, fields: list[tuple[str, str]], version: int) -> tuple[list[str], int]:
    import struct

    parts = re.findall(r"(\d*)([a-zA-Z])", fmt.lstrip("<>=!@"))
    if len(parts) != len(fields):
        raise ValueError(f"bitstream header {fmt!r} has {len(parts)} fields, the docs describe {len(fields)}: "
                         "update CONTAINER_FIELDS / FRAME_FIELDS in docs/_hooks/gen_pages.py")
    rows, offset = [], 0
    for (count, kind), (name, what) in zip(parts, fields, strict=True):
        size = struct.calcsize("<" + (count or "") + kind)
        kind_name = _STRUCT_TYPES.get(kind, kind)
        rows.append(f"| {offset} | {size} | {kind_name} | {name} | {what.format(version=version)} |")
        offset += size
    return rows, offset


def bitstream() -> str:
    from liccs.engines import bitstream as b

    head = ["| offset | bytes | type | field | what |", "| --- | --- | --- | --- | --- |"]
    c_rows, c_size = _struct_rows(b._CONT_HEAD.format, CONTAINER_FIELDS, b.VERSION)
    f_rows, f_size = _struct_rows(b._FRAME_HEAD.format, FRAME_FIELDS, b.VERSION)
    return "\n".join([
        f"**Container** (one image, a `.liccs` file; version {b.VERSION}), little-endian:", "", *head, *c_rows,
        f"| {c_size} | 4 | u32 | header crc32 | of the {c_size} bytes before it |",
        f"| {c_size + 4} | … | frames | strings | one frame per latent, back to back |", "",
        "**Frame** (one string), little-endian:", "", *head, *f_rows,
        f"| {f_size} | 4 × checks | u32 each | checks | crc32s of the entropy-table indexes the encoder used |",
        f"| {f_size} + 4 × checks | 4 | u32 | crc32 | of the header, the checks and the payload |",
        f"| {f_size + 4} + 4 × checks | payload length | bytes | payload | CompressAI's rANS string, unchanged |", "",
        f"So a file is {c_size + 4} bytes of container plus {f_size + 4} (+ 4 per check) per frame on top of "
        "CompressAI's strings, and its length is the real size of the compressed image (bpp is counted from it).", ""])


def stages() -> str:
    import liccs.stages  # noqa: F401  (registers the generic stages)
    from liccs import papers
    from liccs.stage import StageBase, ordered

    papers.load()  # every paper's driver

    lines = ["| order | stage | on when | what | tables |", "| --- | --- | --- | --- | --- |"]
    for st in ordered():
        what = "a paper's driver: see [Paper reproductions](../papers.md)" if type(st).__name__ == "PaperStage" \
            else _first_sentence(type(st))
        tables = ", ".join(f"`{t.name}`" for t in st.tables)
        own_rule = getattr(type(st), "enabled", None) is not StageBase.enabled
        when = f"its own rule (section `[{st.section}]`)" if own_rule else f"`[{st.section}] enabled`"
        lines.append(f"| {st.order} | `{st.name}` | {when} | {rich(what)} | {tables} |")
    return "\n".join(lines) + "\n"


def module_doc(module: Any) -> str:
    """A module's docstring as Markdown, its lines kept (lists stay lists), Sphinx roles and ``x`` as code."""
    text = inspect.getdoc(module) or ""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text) + "\n"


def stats_rule() -> str:
    import liccs.core.stats

    # the rule as it is: a paragraph about when it changed (it names a date) stays in the module's API page
    paragraphs = module_doc(liccs.core.stats).split("\n\n")
    return "\n\n".join(p for p in paragraphs if not re.search(r"\b\d{4}-\d{2}-\d{2}\b", p)) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "stats-rule": stats_rule,
    "bitstream": bitstream,
    "codecs": codecs,
    "classifiers": classifiers,
    "stages": stages,
    "config-reference": config_reference,
    "builtin-configs": builtin_configs,
    "commands": commands,
    "engines": engines,
    "attacks": attacks,
    "objectives": objectives,
}


def expand(markdown: str, where: str = "page") -> str:
    """``markdown`` with every marker replaced by its generated text."""
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in GENERATORS:
            raise KeyError(f"{where}: unknown generated block {m.group(1)!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[m.group(1)]()
    return MARKER.sub(sub, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return expand(markdown, page.file.src_uri)


_ROLE_HTML = re.compile(r":(?:class|func|mod|data|meth|attr|exc|obj):<code>(~?)([^<]+)</code>")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Docstrings use Sphinx roles (:class:`X`); mkdocstrings renders them as ``:class:`` + code: keep the code."""
    return _ROLE_HTML.sub(lambda m: f"<code>{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}</code>", html)


if __name__ == "__main__":
    print(GENERATORS[sys.argv[1]]())
