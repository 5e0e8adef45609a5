"""A short-lived cache of rendered page content, shared by the sessions that see exactly the same mines.

A control room polls: twenty people on the same province overview, or on the same mine page every
5 s, would each have the same queries run and the same rows rendered. The cache keeps the rendered
*content* of a page (never the page around it: the signed-in person, the CSRF token and the
language switch are rendered per request, after the cache) for `TTL` seconds, keyed by

  - the scope: the role, the scope codes and every registry id of the mines the session sees,
    so two sessions share an entry only when they see exactly the same mines;
  - the language, the path, the query string and whether htmx asked for a fragment.

A key is looked up only after the route has checked that the session may see what the path
names (the mine of a mine page), so the cache never answers what the scope would refuse.
Pages carrying forms with the CSRF token (the case page) are not cached. A console write (a case
action, a measure) clears the cache of its process; other writers (the API, the alerting worker,
another worker process) are seen within `TTL`. Concurrent misses of one key wait for one render
(no stampede when an entry expires under 20 clients). `MINEWATCH_CONSOLE_CACHE_TTL=0` turns it off.

A hit in the last quarter of an entry's life starts its refresh in the background (one at a time per
key) and is answered from the entry, which is still within `TTL`: a page that is asked for all the
time is renewed before it expires, so its requests do not queue behind the database for a render.
An entry's age counts from the start of the render that made it, so nothing older than `TTL` is ever
served; a refresh that was under way when the cache was cleared is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from api.auth.principal import Principal

# 2 s: a control room refreshes every 5 s, so the staleness is invisible (settings.console_cache_ttl_s).
TTL = 2.0
MAX_ENTRIES = 2000
# A hit within the last quarter of an entry's life refreshes it: early enough that the render (a few
# ms to tens of ms under load) ends before the entry expires, late enough that a page asked for once in
# a while is not rendered twice.
REFRESH_AHEAD = 0.25


def scope_key(principal: Principal) -> tuple[Hashable, ...]:
    """Who may share an entry: same role, same scope codes, and exactly the same visible mines."""
    return (principal.role, tuple(sorted(principal.scope)), tuple(principal.mine_ids))


@dataclass(slots=True)
class _Entry:
    expires: float
    value: asyncio.Future[Any]
    refreshing: bool = field(default=False)


class PageCache:
    """Rendered content by key for `ttl` seconds (of `clock`, monotonic seconds; not the app's clock)."""

    def __init__(self, ttl: float = TTL, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._generation = 0  # bumped by clear(): refreshes begun before it are dropped
        self._refreshes: set[asyncio.Task[None]] = set()
        self.hits = 0
        self.misses = 0
        self.refreshes = 0

    def clear(self) -> None:
        """Forget everything (after a write through the console)."""
        self._entries.clear()
        self._generation += 1

    async def get(self, key: Hashable, produce: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of `key`, or `produce()`'s, shared with concurrent callers of the same key."""
        if self.ttl <= 0:
            return await produce()
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            self.hits += 1
            if not entry.refreshing and entry.value.done() and entry.expires - now <= self.ttl * REFRESH_AHEAD:
                self._refresh(key, entry, produce, now)
            return await asyncio.shield(entry.value)
        self.misses += 1
        if len(self._entries) >= self.max_entries:
            self._evict(now)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[key] = _Entry(now + self.ttl, future)
        try:
            value = await produce()
        except BaseException as exc:
            # A failed render is not cached: the next request tries again. Waiters see the error.
            found = self._entries.get(key)
            if found is not None and found.value is future:
                del self._entries[key]
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            else:
                future.cancel()
            raise
        future.set_result(value)
        return value

    def _refresh(self, key: Hashable, entry: _Entry, produce: Callable[[], Awaitable[Any]], now: float) -> None:
        """Render `key` again in the background; the entry keeps answering until the new value is in."""
        entry.refreshing = True
        generation = self._generation
        self.refreshes += 1

        async def run() -> None:
            try:
                value = await produce()
            except Exception:  # the entry expires as usual; the next miss renders again and raises
                entry.refreshing = False
                return
            if self._generation != generation or self._entries.get(key) is not entry:
                return  # cleared (a write) or replaced meanwhile: this render may predate it
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(value)
            self._entries[key] = _Entry(now + self.ttl, done)  # as old as the render's start

        task = asyncio.get_running_loop().create_task(run())
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    def _evict(self, now: float) -> None:
        for k in [k for k, e in self._entries.items() if e.expires <= now and e.value.done()]:
            del self._entries[k]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
