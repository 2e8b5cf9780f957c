"""Errors of the export step: graphs that cannot be exported, artifacts that cannot be read."""

from __future__ import annotations

from liccs.core.errors import LiccsError


class ExportError(LiccsError):
    """A graph that no exporter could turn into an artifact; the message names the graph and each failure."""


class ArtifactError(LiccsError):
    """An artifact file that is missing, truncated or corrupt; the message names the file."""
