"""A tiny builder for WHERE clauses whose fragments are ours and whose values are always parameters."""

from __future__ import annotations

from typing import Any

from api.auth.principal import Principal


class Where:
    """Collects conditions and their positional parameters ($1, $2, ...).

    Only literal SQL written in this package goes into `where()`; every value goes
    through `param()`, so the built text never contains input. Leaving absent
    filters out (instead of `$n IS NULL OR ...`) keeps each query's plan on its index.
    """

    def __init__(self) -> None:
        self.conds: list[str] = []
        self.args: list[Any] = []

    def param(self, value: Any) -> str:
        """Add a parameter; returns its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    def where(self, cond: str) -> None:
        self.conds.append(cond)

    def scope(self, column: str, principal: Principal) -> None:
        """Restrict `column` (a mine id) to the caller's mines; admins see all, so no condition."""
        if not principal.is_admin:
            self.where(f"{column} = ANY({self.param(principal.mine_ids)}::int[])")

    @property
    def sql(self) -> str:
        return " AND ".join(self.conds) if self.conds else "true"
