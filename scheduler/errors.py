"""Errors that reach an operator: each names the field, the limit or the thing that is wrong."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a request the current state does not allow; shown as one line, exit code 2."""


class StoryRejected(UserError):
    """A story failed its checks; ``problems`` lists every one, per account."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"story not queued, {len(problems)} problem(s): " + "; ".join(problems))
        self.problems = problems
