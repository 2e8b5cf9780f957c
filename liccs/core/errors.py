"""Exceptions that liccs raises on bad input: each message names the thing that was wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LiccsError(Exception):
    """Base class of every error liccs raises on purpose (bad input, missing resource)."""


class UnknownNameError(LiccsError, LookupError):
    """A name that is not in a registry; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")
        self.kind, self.name, self.valid = kind, name, valid


class DuplicateNameError(LiccsError, ValueError):
    """A registry entry registered twice."""


class WeightsError(LiccsError):
    """Weights that cannot be found, read or loaded; the message names the file."""


class ImageReadError(LiccsError, OSError):
    """An image file that cannot be read; the message names the file."""


class InputError(LiccsError, ValueError):
    """A tensor or argument of the wrong shape, dtype or range; the message names it."""


class RunnerInactive(LiccsError, RuntimeError):
    """A runner used before ``activate()`` (or after ``deactivate()``); the message names the runner."""


class EngineUnavailable(LiccsError):
    """An engine this machine cannot run; the message says why and what to install."""
