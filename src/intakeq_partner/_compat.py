"""Old spellings of the public API that keep working, with a DeprecationWarning, for one release.

The decorators keep the new signature for type checkers (a call in the old spelling is a type error there,
which is the point) and translate the old spelling at run time.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["became_positional", "deprecated", "renamed_arguments", "was_positional"]

P = ParamSpec("P")
R = TypeVar("R")


def deprecated(message: str) -> None:
    """Warn once per call site, pointing at the caller of the public function."""
    warnings.warn(message, DeprecationWarning, stacklevel=3)


def renamed_arguments(**old_to_new: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept `old=` for each renamed keyword argument, warning that it is now `new=`."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = function.__qualname__

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {old}= (its old name) and {new}=")
                    deprecated(f"{name}({old}=...) is now {name}({new}=...); the old name goes in the next release")
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate


def was_positional(*names: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept `names` positionally after the function's own positional parameters, as they used to be, warning
    that they are keyword-only now."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = function.__qualname__
        positional = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            extra = args[len(positional) :]
            if extra:
                if len(extra) > len(names):
                    raise TypeError(f"{name}() takes {len(positional)} positional arguments, got {len(args)}")
                moved = names[: len(extra)]
                clash = [n for n in moved if n in kwargs]
                if clash:
                    raise TypeError(f"{name}() got {clash[0]} both by position and by keyword")
                deprecated(
                    f"{name}(): pass {', '.join(f'{n}=' for n in moved)} by keyword; "
                    "by position it stops working in the next release"
                )
                kwargs.update(zip(moved, extra, strict=True))
                args = args[: len(positional)]
            return function(*args, **kwargs)

        return wrapper

    return decorate


def became_positional(*old_names: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept each of `old_names=` as the function's first argument (after self), which is positional now,
    warning that it is."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = function.__qualname__

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            given = [old for old in old_names if old in kwargs]
            if given:
                if len(given) > 1 or len(args) > 1:
                    raise TypeError(f"{name}() takes one reference; got {', '.join(given)} and more")
                value = kwargs.pop(given[0])
                deprecated(f"{name}({given[0]}=ref) is now {name}(ref); the old keyword goes in the next release")
                args = (*args, value)
            return function(*args, **kwargs)

        return wrapper

    return decorate
