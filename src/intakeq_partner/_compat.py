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

__all__ = ["became_positional", "deprecated", "reference_first", "renamed_arguments", "was_positional"]

P = ParamSpec("P")
R = TypeVar("R")


def deprecated(message: str) -> None:
    """Warn, pointing at the caller of the public function (for a coroutine: the code that awaits it)."""
    warnings.warn(message, DeprecationWarning, stacklevel=4)  # deprecated, translate, wrapper, caller


def _same_kind(function: Callable[..., Any], translate: Callable[[tuple[Any, ...], dict[str, Any]], Any]) -> Any:
    """A wrapper that translates the arguments, then calls `function`; async when `function` is, so that
    `inspect.iscoroutinefunction` (and everything that relies on it) still sees a coroutine function."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = translate(args, kwargs)
            return await function(*args, **kwargs)

        return async_wrapper

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = translate(args, kwargs)
        return function(*args, **kwargs)

    return wrapper


def renamed_arguments(**old_to_new: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept `old=` for each renamed keyword argument, warning that it is now `new=`."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = function.__qualname__

        def translate(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {old}= (its old name) and {new}=")
                    deprecated(f"{name}({old}=...) is now {name}({new}=...); the old name goes in the next release")
                    kwargs[new] = kwargs.pop(old)
            return args, kwargs

        wrapped: Callable[P, R] = _same_kind(function, translate)
        return wrapped

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

        def translate(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            extra = args[len(positional) :]
            if not extra:
                return args, kwargs
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
            return args[: len(positional)], {**kwargs, **dict(zip(moved, extra, strict=True))}

        wrapped: Callable[P, R] = _same_kind(function, translate)
        return wrapped

    return decorate


def became_positional(*old_names: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept each of `old_names=` as the function's first argument (after self), which is positional now,
    warning that it is."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = function.__qualname__

        def translate(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            given = [old for old in old_names if old in kwargs]
            if not given:
                return args, kwargs
            if len(given) > 1 or len(args) > 1:
                raise TypeError(f"{name}() takes one reference; got {', '.join(given)} and more")
            deprecated(f"{name}({given[0]}=ref) is now {name}(ref); the old keyword goes in the next release")
            kwargs = dict(kwargs)
            return (*args, kwargs.pop(given[0])), kwargs

        wrapped: Callable[P, R] = _same_kind(function, translate)
        return wrapped

    return decorate


def reference_first(external: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Updates name their object first now, `update(ref, **changes)`, as every other method does. The old
    spellings keep working: `update(id=X, ...)` is `update(X, ...)`, and `update(<external>=E, ...)` without
    `id=` (which named the object by its external ID) is `update(E, ...)`; with `id=`, `<external>=` was and
    stays a change (a new external ID)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = function.__qualname__

        def translate(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            if kwargs.get("id", ...) is None:
                kwargs = {k: v for k, v in kwargs.items() if k != "id"}
            if "id" not in kwargs and (len(args) > 1 or kwargs.get(external) is None):
                return args, kwargs
            if len(args) > 1:
                raise TypeError(f"{name}() got the object twice: by position and as id=")
            kwargs = dict(kwargs)
            if "id" in kwargs:
                deprecated(f"{name}(id=...) is now {name}(ref, ...); the old keyword goes in the next release")
                return (*args, kwargs.pop("id")), kwargs
            deprecated(
                f"{name}({external}=...) naming the object is now {name}(ref, ...), where {external}= sets a new "
                "external ID; the old spelling goes in the next release"
            )
            return (*args, kwargs.pop(external)), kwargs

        wrapped: Callable[P, R] = _same_kind(function, translate)
        return wrapped

    return decorate
