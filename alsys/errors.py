"""The one exception type that user-facing code turns into a one-line message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")


class InputError(ValueError):
    """Bad input from a user: names the offending field and what is wrong with it.

    The CLI prints ``str(error)`` on one line and exits non-zero, never with a traceback.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def lookup(registry: Mapping[str, V], name: str, kind: str) -> V:
    """``registry[name]``; an unknown name is an InputError listing the valid ones."""
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(sorted(registry))
        raise InputError(kind, f"unknown {kind} {name!r}; valid: {valid}") from None
