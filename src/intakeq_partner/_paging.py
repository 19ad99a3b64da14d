"""Walking IntakeQ's lists page by page, whether or not the server really pages them.

The document promises whole lists; IntakeQ's C# client sends `page` and IntakeQ's v1 lists stop at 100 records
a call. A walk asks for `page=1, 2, ...` and stops at an empty page, a short page, or a page with nothing new
(a server that ignores `page` answers the same records every time). Each record comes once, by its Id, even
when records shift between pages as others are added.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol, TypeVar

V1_PAGE_SIZE = 100
"""Records per page of IntakeQ's v1 lists: a page with fewer is the last one."""


class HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=HasId)


async def walk(fetch: Callable[[int], Awaitable[list[T]]], *, page_size: int | None = None) -> AsyncGenerator[T, None]:
    """Every record of a paged list, fetching page after page (`fetch(page)`, 1-based).

    `page_size`: the server's page size when it is known, so a shorter page ends the walk at once; when it is
    not, a page shorter than the longest before it does (which costs one more call, for the empty page).
    """
    seen: set[str] = set()
    longest = 0
    page = 1
    while True:
        batch = await fetch(page)
        new = [record for record in batch if record.id not in seen]
        for record in new:
            seen.add(record.id)
            yield record
        full = page_size if page_size is not None else max(longest, len(batch))  # what a full page holds
        if not new or len(batch) < full:
            return
        longest = full
        page += 1


async def collect(records: AsyncGenerator[T, None]) -> list[T]:
    """Every record of a walk, in a list; the walk is closed even when this is ended early (a call_timeout)."""
    async with contextlib.aclosing(records):
        return [record async for record in records]
