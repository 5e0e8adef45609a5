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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from api.auth.principal import Principal

# A control room refreshes every 5 s: content up to 2 s old is invisible there.
# 2 s: a control room refreshes every 5 s, so the staleness is invisible (settings.console_cache_ttl_s).
TTL = 2.0
MAX_ENTRIES = 2000


def scope_key(principal: Principal) -> tuple[Hashable, ...]:
    """Who may share an entry: same role, same scope codes, and exactly the same visible mines."""
    return (principal.role, tuple(sorted(principal.scope)), tuple(principal.mine_ids))


class PageCache:
    """Rendered content by key for `ttl` seconds (monotonic time, not the app's clock)."""

    def __init__(self, ttl: float = TTL, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget everything (after a write through the console)."""
        self._entries.clear()

    async def get(self, key: Hashable, produce: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of `key`, or `produce()`'s, shared with concurrent callers of the same key."""
        if self.ttl <= 0:
            return await produce()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return await asyncio.shield(entry[1])
        self.misses += 1
        if len(self._entries) >= self.max_entries:
            self._evict(now)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now + self.ttl, future)
        try:
            value = await produce()
        except BaseException as exc:
            # A failed render is not cached: the next request tries again. Waiters see the error.
            if self._entries.get(key, (0.0, None))[1] is future:
                del self._entries[key]
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            else:
                future.cancel()
            raise
        future.set_result(value)
        return value

    def _evict(self, now: float) -> None:
        for k in [k for k, (expires, f) in self._entries.items() if expires <= now and f.done()]:
            del self._entries[k]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
