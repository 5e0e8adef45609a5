"""Who is calling: the token's role, its scope, and the mines that scope lets it see."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import asyncpg

from alerting.lifecycle import Actor, Role
from api.auth.tokens import REGION_ROLES, TokenRole, hash_token
from api.schemas import is_code

# last_used_at is bookkeeping, not an audit log: writing it at most once a minute
# keeps a busy client from turning every read into a write.
_TOUCH_EVERY = timedelta(minutes=1)

# One round trip: the token and, resolved through the registry, the mines in its scope (an
# admin sees every mine, so its list is not built: it would be the whole registry each time),
# and the registry ids of the mine and point the request's path names ($2, $3; NULL for none),
# which would otherwise cost a round trip each. Whether the caller may see them is decided
# afterwards, by the scope, exactly as before (api/mines/service.visible_mine).
_LOOKUP = """
SELECT t.id, t.name, t.role, t.scope_mines, t.scope_region, t.last_used_at, s.ids, s.codes,
       pm.id AS path_mine, pp.id AS path_point, pp.unit AS path_point_unit
FROM api_tokens t
CROSS JOIN LATERAL (
    SELECT array_agg(m.id ORDER BY m.id) AS ids, array_agg(m.code ORDER BY m.id) AS codes
    FROM mines m WHERE CASE t.role
        WHEN 'mine' THEN m.code = ANY(t.scope_mines)
        WHEN 'county' THEN m.county = t.scope_region
        WHEN 'city' THEN m.city = t.scope_region
        WHEN 'province' THEN m.province = t.scope_region
        ELSE false END) s
LEFT JOIN mines pm ON pm.code = $2::text
LEFT JOIN points pp ON pp.mine_id = pm.id AND pp.code = $3::text
WHERE t.token_hash = $1 AND t.revoked_at IS NULL
"""


def _code(value: str | None) -> str | None:
    """Only path values that can be codes are looked up; anything else (too long, a NUL byte,
    another alphabet) fails the route's validation anyway."""
    return value if is_code(value) else None


@dataclass(frozen=True, slots=True)
class PathRefs:
    """Registry ids of the mine and point codes the request's path names, looked up with the
    token. `mine_id` / `point` are None when no such mine / point exists (or none was named).
    Not a statement of visibility: `visible_mine` still applies the caller's scope."""

    mine_code: str | None = None
    mine_id: int | None = None
    point_code: str | None = None
    point: tuple[int, str] | None = None  # (id, unit) of the point `point_code` of mine `mine_id`


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `mines` maps the code of every mine it may see to its registry
    id (empty for an admin, who sees all)."""

    token_id: int
    name: str
    role: TokenRole
    scope: frozenset[str]  # mine codes (role mine) or the one region code (regulators)
    mines: Mapping[str, int] = field(default_factory=dict)
    _ids: frozenset[int] = field(default=frozenset(), repr=False)
    path: PathRefs = field(default_factory=PathRefs)

    @classmethod
    def of(cls, token_id: int, name: str, role: TokenRole, scope: frozenset[str],
           mines: Mapping[str, int], path: PathRefs | None = None) -> Principal:
        return cls(token_id, name, role, scope, dict(mines), frozenset(mines.values()), path or PathRefs())

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_regulator(self) -> bool:
        return self.role in REGION_ROLES

    @property
    def mine_ids(self) -> list[int]:
        """Registry ids of the mines in scope (meaningless for an admin: check `is_admin`)."""
        return sorted(self._ids)

    def sees(self, mine_id: int) -> bool:
        """Whether this caller may see anything of the mine with this registry id."""
        return self.is_admin or mine_id in self._ids

    def actor(self) -> Actor:
        """The lifecycle's view of this caller (who, role, scope) for case actions."""
        return Actor(who=self.name, role=Role(self.role), scope=self.scope)


async def authenticate(pool: asyncpg.Pool, token: str, *, pepper: str, now: datetime, mine: str | None = None,
                       point: str | None = None) -> Principal | None:
    """The principal of a bearer token, or None when it is unknown or revoked; with the registry
    ids of the path's `mine` and `point` codes in `path` (see PathRefs)."""
    mine = _code(mine)
    point = _code(point) if mine is not None else None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_LOOKUP, hash_token(token, pepper), mine, point)
        if row is None:
            return None
        last = row["last_used_at"]
        if last is None or now - last >= _TOUCH_EVERY:
            await conn.execute("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", row["id"], now)
    role = cast(TokenRole, row["role"])
    scope = frozenset(row["scope_mines"]) if role == "mine" else (
        frozenset({row["scope_region"]}) if row["scope_region"] else frozenset())
    path = PathRefs(mine, row["path_mine"], point,
                    None if row["path_point"] is None else (row["path_point"], row["path_point_unit"]))
    return Principal.of(row["id"], row["name"], role, scope, dict(zip(row["codes"] or (), row["ids"] or (), strict=True)),
                        path)
