"""Every HTTP route fuzzed with hostile input against a real `minewatch api` process and database.

Hypothesis makes HOSTILE requests over the routes of the OpenAPI document (random bytes and broken
UTF-8 in path segments and query values, NUL, numbers past 64 bits, extreme times, oversized
fields and bodies, forged cursors, some signed with the server's own key, forged or missing
tokens, wrong methods) and after every VALID_EVERY of them a set of valid requests whose answers
are checked. The acceptance (issue 15): no response >= 500 but the documented 503, no hang
(each request has a REQUEST_TIMEOUT_S), valid requests still right, and the process's peak RSS
under RSS_BOUND_KIB.

MINEWATCH_FUZZ_EXAMPLES raises the count for a deeper run.
"""

from __future__ import annotations

import base64
import json
import os
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.pagination import CursorCodec
from minewatch.settings import Settings
from tests.api.live import ApiProcess
from tests.api.scenario import ALL_MINES, M1, PEPPER, T0_POINT, World

pytestmark = pytest.mark.integration

HOSTILE = int(os.environ.get("MINEWATCH_FUZZ_EXAMPLES", "1200"))
VALID_EVERY = 25
REQUEST_TIMEOUT_S = 20.0
# The API process starts near 100-150 MB; no hostile request may make it hold much more.
RSS_BOUND_KIB = 400 * 1024
SMS_SECRET = "fuzz-sms-secret-0123456789abcdef"

DOC = create_app(Settings()).openapi()
ROUTES = [(path, method.upper()) for path, item in DOC["paths"].items() for method in item
          if path.startswith("/v1/") or path in ("/healthz", "/readyz", "/metrics")]
PARAMS = {(path, method.upper()): [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
          for path, item in DOC["paths"].items() for method, op in item.items()}
QUERY_NAMES = sorted({n for names in PARAMS.values() for n in names})

SIGNED = CursorCodec(PEPPER.encode())  # the server's own key: cursors that pass the signature check
FORGED = CursorCodec(b"not the server's pepper")
KINDS = ["mines", "cases", "dead-letters", "exceedances", "orders", "accidents", "personnel", "readings", "x"]

SPECIAL = ["%00", "%ED%A0%80", "%FF%FE%FD", "%C0%AF", "%25", "%2F", "..", "%2e%2e%2f%2e%2e", "99999999999999999999999",
           str(2**63), str(2**63 - 1), str(-(2**63) - 1), "-1", "0", "00", "1e999", "-1e-999", "NaN", "Infinity",
           "9999-12-31T23:59:59Z", "0001-01-01T00:00:00%2B14:00", "99999-01-01T00:00:00Z", "1900-01-01T00:00:00Z",
           "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00", "1700000000", "x" * 5000, "",
           "%27%20OR%201=1--", "%E2%80%AE", "true", "null", "[]", "{}", "1h", "0s", "9999999d", "1m", "-1m",
           quote(T0_POINT), M1, "%20" + M1, M1 + "%0A"]


@st.composite
def text_value(draw: st.DrawFn) -> str:
    """One URL-encoded path segment or query value."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return quote(draw(st.text(max_size=60)), safe="")
    if kind == 1:
        return quote(draw(st.binary(max_size=60)), safe="")  # mostly not UTF-8
    if kind == 2:
        return str(draw(st.integers(min_value=-(2**200), max_value=2**200)))
    if kind == 3:
        return quote(str(draw(st.floats(allow_nan=True, allow_infinity=True))), safe="")
    return draw(st.sampled_from(SPECIAL))


@st.composite
def cursor_value(draw: st.DrawFn) -> str:
    key = draw(st.lists(st.one_of(st.integers(min_value=-(2**100), max_value=2**100), st.text(max_size=20),
                                  st.floats(allow_nan=False), st.none(), st.booleans(),
                                  st.lists(st.integers(), max_size=2)), max_size=3))
    kind = draw(st.sampled_from(KINDS))
    how = draw(st.integers(0, 3))
    if how == 0:
        return SIGNED.encode(kind, key)  # type: ignore[arg-type]
    if how == 1:
        return FORGED.encode(kind, key)  # type: ignore[arg-type]
    if how == 2:
        return base64.urlsafe_b64encode(draw(st.binary(max_size=80))).rstrip(b"=").decode()
    return draw(text_value())


@st.composite
def body_value(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        doc: dict[str, Any] = {
            draw(st.sampled_from(["action", "comment", "deadline", "occurred_at", "severity", "description",
                                  "from", "text", "id", "measure", "done_at"])): draw(st.one_of(
                st.text(max_size=50), st.integers(min_value=-(2**100), max_value=2**100), st.floats(), st.none(),
                st.sampled_from(["acknowledge", "plan", "close", "general", "9999-12-31T23:59:59Z",
                                 "0001-01-01T00:00:00+14:00", "\x00", "\ud800", "x" * 20_000, "1 1"])))
            for _ in range(draw(st.integers(0, 4)))}
        return json.dumps(doc).encode()
    if kind == 2:
        depth = draw(st.sampled_from([100, 10_000, 200_000]))
        return b"[" * depth + b"]" * depth
    if kind == 3:
        return b'{"comment": "' + b"x" * draw(st.sampled_from([300_000, 2_000_000])) + b'"}'  # past the limit
    if kind == 4:
        return b'{"action": "plan", "deadline": 1' + b"0" * draw(st.integers(20, 6000)) + b"}"
    return b""


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@st.composite
def hostile_request(draw: st.DrawFn, tokens: dict[str, str]) -> Request:
    path, method = draw(st.sampled_from(ROUTES))
    segments = []
    for part in path.split("/"):
        if part.startswith("{"):
            part = draw(st.one_of(text_value(), st.sampled_from(sorted(ALL_MINES)), st.just("1")))
        segments.append(part)
    url = "/".join(segments) or "/"
    query = []
    for name in draw(st.lists(st.sampled_from([*PARAMS.get((path, method), []), *QUERY_NAMES, "sinse", "%00"]),
                              max_size=4)):
        value = draw(cursor_value()) if name == "cursor" else draw(text_value())
        query.append(f"{quote(name, safe='%')}={value}")
    if query:
        url += "?" + "&".join(query)
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS", "POST", "GET", "HEAD"]))
    auth = draw(st.sampled_from(["admin"] * 6 + ["mine1", "county_qx", "none", "garbage", "sms"]))
    headers: dict[str, str] = {}
    if auth in tokens:
        headers["Authorization"] = f"Bearer {tokens[auth]}"
    elif auth == "garbage":
        headers["Authorization"] = draw(st.sampled_from(
            ["Bearer " + "A" * 199, "Bearer " + "A" * 5000, "Basic YWRtaW46YWRtaW4=", "Bearer mw_0000", "Bearer"]))
    elif auth == "sms":
        headers["Authorization"] = f"Bearer {SMS_SECRET}"
    body = None
    if method in ("POST", "PUT", "PATCH") or draw(st.integers(0, 9)) == 0:
        body = draw(body_value())
        headers["Content-Type"] = draw(st.sampled_from(["application/json"] * 4 + ["text/plain", "application/x-www-form-urlencoded"]))
    return Request(method, url, headers, body)


@pytest.fixture(scope="module")
def api(db: str, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    log = tmp_path_factory.mktemp("fuzz") / "api.log"
    with ApiProcess(db, log, env={"MINEWATCH_SMS_INBOUND_SECRET": SMS_SECRET}) as proc:
        yield proc


def _check_valid(c: httpx.Client, world: World) -> None:
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    mines = c.get("/v1/mines", headers=admin, params={"limit": 1000})
    assert mines.status_code == 200, mines.text
    assert {m["code"] for m in mines.json()["items"]} >= ALL_MINES
    one = c.get(f"/v1/mines/{M1}", headers={"Authorization": f"Bearer {world.tokens['mine1']}"})
    assert one.status_code == 200 and one.json()["code"] == M1
    case_id = world.cases["m1_open"]
    case = c.get(f"/v1/cases/{case_id}", headers=admin)
    assert case.status_code == 200 and case.json()["id"] == case_id
    other = c.get(f"/v1/cases/{case_id}", headers={"Authorization": f"Bearer {world.tokens['mine2']}"})
    assert other.status_code == 404  # scope still holds
    page = c.get("/v1/cases", headers=admin, params={"limit": 1})
    assert page.status_code == 200 and page.json()["next_cursor"]
    nxt = c.get("/v1/cases", headers=admin, params={"limit": 1, "cursor": page.json()["next_cursor"]})
    assert nxt.status_code == 200 and nxt.json()["items"][0]["id"] != page.json()["items"][0]["id"]
    assert c.get("/healthz").status_code == 200


def test_every_route_survives_hostile_input(api: ApiProcess, world: World, tmp_path: Path) -> None:
    tokens = {label: world.tokens[label] for label in ("admin", "mine1", "county_qx")}
    statuses: Counter[int] = Counter()
    seen = {"n": 0}
    with httpx.Client(base_url=api.url, timeout=REQUEST_TIMEOUT_S) as c:
        _check_valid(c, world)

        @settings(max_examples=HOSTILE, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(req=hostile_request(tokens))
        def one(req: Request) -> None:
            seen["n"] += 1
            try:
                r = c.request(req.method, req.url, headers=req.headers, content=req.body)
            except httpx.TimeoutException as exc:
                raise AssertionError(f"hang: {req}") from exc
            except httpx.RemoteProtocolError:
                # the server cut the connection (an oversized body it refused early): not a 5xx
                statuses[0] += 1
                return
            statuses[r.status_code] += 1
            if r.status_code >= 500:
                documented = r.status_code == 503 and r.headers.get("content-type") == "application/problem+json"
                assert documented, (req, r.status_code, r.text[:500])
            if seen["n"] % VALID_EVERY == 0:
                _check_valid(c, world)

        one()
        _check_valid(c, world)
    peak = api.rss_kib("VmHWM")
    summary = {"requests": sum(statuses.values()), "statuses": dict(sorted(statuses.items())), "peak_rss_kib": peak}
    (tmp_path / "fuzz.json").write_text(json.dumps(summary))
    print(f"fuzz: {summary}")
    assert sum(statuses.values()) >= min(HOSTILE, 1000), summary
    assert peak < RSS_BOUND_KIB, summary
    # the fuzz reached past validation: answers of every kind
    assert {200, 401, 404, 422} <= set(statuses), summary
    log = api.log.read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


def test_the_alphabet_of_the_fuzz_is_the_documents() -> None:
    """The routes fuzzed are the routes served: a new route joins the fuzz by being in the document."""
    assert {"/v1/dead-letters/{dead_letter_id}", "/v1/alerting/sms/replies", "/v1/cases/{case_id}/actions"} <= {
        p for p, _ in ROUTES}
    assert all(set(string.ascii_lowercase + "_") >= set(n) for n in QUERY_NAMES)
