"""Errors sisam reports to its users.

Every error says what went wrong, where, what was expected and what was found, and a remedy
when one exists, so that a user can fix the input without reading sisam's code.
"""

from __future__ import annotations

from dataclasses import dataclass


class SisamError(Exception):
    """Base of all errors sisam raises on purpose; the CLI turns them into exit code 1."""


@dataclass(frozen=True)
class Problem:
    """One defect found in an input file: file, row (1-based data row, header excluded;
    None for the whole file), column (None for the whole row) and a message."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class InputError(SisamError):
    """An input file breaks the contract. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], limit: int = 50):
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:limit]]
        more = len(self.problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more problem(s)")
        super().__init__(f"{len(self.problems)} problem(s) in the input:\n  " + "\n  ".join(shown))


class KnowledgeError(SisamError):
    """A file of ``knowledge/`` is malformed: names the file, the entry and the key."""


class KnowledgeBaseError(SisamError):
    """A knowledge base is missing, corrupted, truncated or of another catalog."""
