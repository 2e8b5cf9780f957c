"""Where a stage runs, as a value: ``ENGINE[>TAIL][/FORM][:LABEL]`` parsed once (:class:`EngineAddress`).

- ``ENGINE``: a registered engine (``ov-cpu``);
- ``>TAIL``: a split stage, its output layer on the engine ``TAIL`` (``ov-cpu>ort-cpu``, :mod:`.chain`);
- ``/FORM``: the transposed-convolution form of a stage's graph (``ov-cpu/sub-pixel-output``,
  :data:`liccs.export.phases.TRANSPOSED_FORMS`; ``native`` when absent);
- ``:LABEL``: the graph a runner runs (a runner's name, ``ort-cpu:g_a``).
"""

from __future__ import annotations

from dataclasses import dataclass

from liccs.core.errors import InputError

#: Separates the head's engine from the tail's in an engine name: ``"ov-cpu>ort-cpu"``.
SPLIT = ">"
#: The transposed-convolution form of a stage entry that names none.
NATIVE = "native"


@dataclass(frozen=True)
class EngineAddress:
    """One parsed address: ``head`` engine, ``tail`` engine of a split stage (``""``: not split), transposed
    ``form`` and runner ``label`` (``""``: none)."""

    head: str
    tail: str = ""
    form: str = NATIVE
    label: str = ""

    @classmethod
    def parse(cls, text: str) -> EngineAddress:
        """The address of ``text``; a malformed split (``A>``, ``A>B>C``) is refused naming it."""
        rest, _, label = text.partition(":")
        rest, _, form = rest.partition("/")
        head, sep, tail = rest.partition(SPLIT)
        if sep and (not head or not tail or SPLIT in tail):
            raise InputError(f"a split engine is 'HEAD{SPLIT}TAIL' (two engine names, e.g. 'ov-cpu{SPLIT}ort-cpu'), "
                             f"got {rest!r}")
        return cls(head, tail, form or NATIVE, label)

    @property
    def split(self) -> bool:
        """Whether the stage's output layer runs on another engine."""
        return bool(self.tail)

    @property
    def engine(self) -> str:
        """The engine part as written: ``HEAD`` or ``HEAD>TAIL``."""
        return f"{self.head}{SPLIT}{self.tail}" if self.tail else self.head

    @property
    def engines(self) -> tuple[str, ...]:
        """Every registered engine the address runs on: ``(head,)`` or ``(head, tail)``."""
        return (self.head, self.tail) if self.tail else (self.head,)

    def __str__(self) -> str:
        return self.engine + (f"/{self.form}" if self.form != NATIVE else "") + (f":{self.label}" if self.label else "")


def parse_split(engine: str) -> tuple[str, str] | None:
    """(head engine, tail engine) of ``"A>B"``; None for a plain engine name."""
    a = EngineAddress.parse(engine)
    return (a.head, a.tail) if a.split else None
