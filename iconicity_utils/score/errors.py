"""The scoring stage's errors: an unusable input, and inputs that failed the check under a stopping policy."""

from __future__ import annotations

__all__ = ["ScoringInputError", "BadInputError"]


class ScoringInputError(ValueError):
    """Scoring input is unusable (missing file, empty folder, bad table); names the file or row."""


class BadInputError(ScoringInputError):
    """Inputs failed the check under ``"stop"`` or ``"strict"``; ``problems`` is the skipped table."""

    def __init__(self, message: str, problems=None):
        super().__init__(message)
        self.problems = problems
