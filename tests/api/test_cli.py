"""`minewatch tokens create | list | revoke` through the parser `api.cli.add_commands` builds."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
import pytest

from api.auth.tokens import list_tokens
from api.cli import add_commands
from tests.api.conftest import settings_for

pytestmark = pytest.mark.integration


def test_cli_create_list_revoke(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    settings = settings_for(db)

    def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        assert args.func(args, settings) == 0
        return capsys.readouterr().out

    out = run("tokens", "create", "--role", "county", "--scope", "140121", "--name", "qingxu duty desk")
    token = out.splitlines()[1]
    assert token.startswith("mwt_")
    listing = run("tokens", "list")
    assert "qingxu duty desk" in listing and token not in listing

    async def token_id() -> int:
        conn = await asyncpg.connect(db)
        try:
            tokens = [t for t in await list_tokens(conn) if t.name == "qingxu duty desk"]
            assert tokens[0].scope == ("140121",) and tokens[0].revoked_at is None
            return tokens[0].id
        finally:
            await conn.close()

    tid = asyncio.run(token_id())
    assert f"token {tid} revoked" in run("tokens", "revoke", str(tid))
    (line,) = [x for x in run("tokens", "list").splitlines() if "qingxu duty desk" in x]
    assert "revoked" in line
