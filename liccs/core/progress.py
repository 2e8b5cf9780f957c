"""Progress that suits its output: tqdm's bars on a terminal; in a log (CI, ``nohup``, a cluster job) one plain line
per finished bar, with its count and time, and one a minute while a long bar runs, never carriage-return debris."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.std import tqdm as _tqdm

#: Seconds between two lines of a running bar when the output is not a terminal.
LOG_INTERVAL_S = 60.0


class tqdm(_tqdm):  # noqa: N801 -- a drop-in for tqdm.tqdm
    """``tqdm`` on a terminal; elsewhere, newline-terminated lines: one when the bar finishes (``leave``), one every
    :data:`LOG_INTERVAL_S` while it runs, none at its start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        file = kwargs.get("file")
        self._plain = not getattr(file if file is not None else sys.stderr, "isatty", lambda: False)()
        if self._plain:
            kwargs.setdefault("mininterval", LOG_INTERVAL_S)
            kwargs["dynamic_ncols"], kwargs["ncols"] = False, 100
        self._last = time.monotonic()
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        if not self._plain:
            return super().display(msg, pos)
        now = time.monotonic()
        if self.n and not self.disable and now - self._last >= LOG_INTERVAL_S:  # none at its start, one a minute
            self._line(msg)
            self._last = now
        return True

    def close(self) -> None:
        if not self._plain or self.disable:
            return super().close()
        if self.leave or (self.leave is None and not self.pos):
            self._line()
        self.fp = _Silent()  # tqdm's own closing writes (a newline, a cleared line) would be debris in a log
        super().close()

    def _line(self, msg: str | None = None) -> None:
        self.fp.write((msg if msg is not None else self.__str__()).strip() + "\n")
        self.fp.flush()


class _Silent:
    def write(self, _: str) -> None:
        pass

    def flush(self) -> None:
        pass
