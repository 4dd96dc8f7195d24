"""Errors that services raise for callers (CLI, views) to show as one clear line."""

from __future__ import annotations


class ValidationError(ValueError):
    """Input that a service refuses; its message is shown to the user as it is."""
