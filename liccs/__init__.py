"""liccs: learned image codecs in front of image classifiers — export, deploy, profile, attack."""

from __future__ import annotations

__version__ = "0.1.0"

from liccs.core.errors import LiccsError

__all__ = ["LiccsError", "__version__"]
