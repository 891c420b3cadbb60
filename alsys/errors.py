"""alsys's errors: one base class, and the input errors every entry point turns into one line.

- :class:`AlsysError` is the base of every error alsys raises on purpose.
- :class:`InputError` is bad input from a user (a YAML field, a flag, a file, a dataset): the
  command line prints ``str(error)`` on one line and exits with code 2, never with a traceback.
  Its named subclasses say which kind of input: :class:`PoolExhausted` here,
  ``DatasetUnavailable`` (alsys.data) for a dataset that is not on disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")


class AlsysError(Exception):
    """Base of every error alsys raises on purpose (as opposed to a bug)."""


class InputError(AlsysError, ValueError):
    """Bad input from a user: names the offending field and what is wrong with it.

    The CLI prints ``str(error)`` on one line and exits with code 2, never with a traceback.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class PoolExhausted(InputError):
    """The rounds ask for more labels than the pool has unlabeled points."""


def lookup(registry: Mapping[str, V], name: str, kind: str) -> V:
    """``registry[name]``; an unknown name is an InputError listing the valid ones."""
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(sorted(registry))
        raise InputError(kind, f"unknown {kind} {name!r}; valid: {valid}") from None
