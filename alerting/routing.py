"""Who is told about a case: the routing file of receivers per mine and per region level.

The file (YAML) is validated when loaded; every error names the file, the key and what is
allowed. Webhook secrets are never in the file: a receiver names the environment variable
that holds its secret (`secret_env`) and the caller resolves it when it builds notifiers.

```yaml
version: 1
start_levels:            # where a non-methane case is raised first (methane: by peak tier)
  default: county
  rules: {overtime: mine, seal_breach: county}
mines:
  "140100000001":
    receivers:           # the mine's own duty people (level `mine`)
      - {id: m1-duty, name: 调度室, sms: ["13800000001"]}
    workforce:           # 双报告: also told about major hazards
      - {id: m1-union, name: 职工代表, sms: ["13800000009"]}
regions:
  county:
    "141122":
      - id: jc-county
        name: 交城县应急管理局
        lang: zh
        sms: ["13900000001"]
        webhook: {url: "https://hooks.example.cn/jc", secret_env: MINEWATCH_HOOK_SECRET_JC}
  city: {}
  province: {}
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from alerting.errors import RoutingError
from alerting.lifecycle import LADDER, Actor, Level, Regions, Role
from minewatch.rule_ids import AT_REGULATOR, INTEGRITY, OVER_CAPACITY
from minewatch.validation import describe

Code = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]+$")]
ReceiverId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def _phone_before(value: Any) -> Any:
    # YAML reads an unquoted number as int; spaces and dashes are how people write numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return normalize_phone(value) if isinstance(value, str) else value


Phone = Annotated[
    str, BeforeValidator(_phone_before), StringConstraints(pattern=r"^\+?[0-9]{5,20}$")
]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]


class _Strict(BaseModel):
    """A routing-file section: unknown keys are errors that list the keys allowed there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                allowed = ", ".join(cls.model_fields)
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        return data


class WebhookSpec(_Strict):
    """A webhook channel: where to POST and which environment variable holds the secret."""

    url: AnyHttpUrl
    secret_env: EnvName

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "secret" in data:
            raise ValueError("secrets are never stored in the routing file; name the "
                             "environment variable that holds it with secret_env")
        return data


class ReceiverSpec(_Strict):
    """One receiver as written in the file."""

    id: ReceiverId
    name: str
    lang: Literal["zh", "en"] = "zh"
    sms: tuple[Phone, ...] = ()
    webhook: WebhookSpec | None = None

    @model_validator(mode="after")
    def _has_channel(self) -> ReceiverSpec:
        if not self.sms and self.webhook is None:
            raise ValueError(f"receiver {self.id} has no channel; give sms and/or webhook")
        return self


class MineRoutes(_Strict):
    """The receivers of one mine: its own duty people, and its workforce channel (双报告)."""

    receivers: tuple[ReceiverSpec, ...] = ()
    workforce: tuple[ReceiverSpec, ...] = ()


class RegionRoutes(_Strict):
    """Regulator receivers per region code, one table per level."""

    county: dict[Code, tuple[ReceiverSpec, ...]] = {}
    city: dict[Code, tuple[ReceiverSpec, ...]] = {}
    province: dict[Code, tuple[ReceiverSpec, ...]] = {}


class StartLevels(_Strict):
    """Where a non-methane case is first raised, per rule, with a default.

    Integrity findings (rules.md §6, and §4's power-off check) and the personnel hazards of §7 /
    §4 (restricted_area, seal_breach, work_continued; over_capacity once major) open at the
    regulator, never at the mine alone: the table may not start them at `mine` (over_capacity
    may: its warning level is the mine's), and a `mine` default does not apply to them (they
    start at the county)."""

    default: Level = Level.COUNTY
    rules: dict[str, Level] = {}

    @model_validator(mode="after")
    def _integrity_at_the_regulator(self) -> StartLevels:
        at_mine = sorted(r for r, level in self.rules.items() if r in AT_REGULATOR and level is Level.MINE)
        integrity = [r for r in at_mine if r in INTEGRITY]
        personnel = [r for r in at_mine if r not in INTEGRITY]
        if integrity:
            raise ValueError(f"rules {', '.join(integrity)}: monitoring-integrity findings open at the regulator "
                             "(rules.md §6); allowed: county, city, province")
        if personnel:
            raise ValueError(f"rules {', '.join(personnel)}: personnel hazards open at the regulator as well as "
                             "the mine (rules.md §7, §4); allowed: county, city, province")
        return self


class RoutingFile(_Strict):
    """The whole routing file."""

    version: Literal[1]
    start_levels: StartLevels = StartLevels()
    mines: dict[Code, MineRoutes] = {}
    regions: RegionRoutes = RegionRoutes()

    @model_validator(mode="after")
    def _unique_ids(self) -> RoutingFile:
        seen: set[str] = set()
        for spec in _all_specs(self):
            if spec.id in seen:
                # ids end up in dedup keys, so two receivers sharing one would swallow messages
                raise ValueError(f"receiver id {spec.id} is used twice; ids must be unique")
            seen.add(spec.id)
        return self


def _all_specs(file: RoutingFile) -> list[ReceiverSpec]:
    specs: list[ReceiverSpec] = []
    for routes in file.mines.values():
        specs += [*routes.receivers, *routes.workforce]
    for table in (file.regions.county, file.regions.city, file.regions.province):
        for receivers in table.values():
            specs += receivers
    return specs


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook target; the secret is looked up by the caller under `secret_env`."""

    url: str
    secret_env: str


@dataclass(frozen=True, slots=True)
class Receiver:
    """Someone to notify: where they sit (level and the mine or region `code`) and how."""

    id: str
    name: str
    level: Level
    code: str  # the mine code for level mine, else the region code
    lang: str
    sms: tuple[str, ...]
    webhook: Webhook | None
    workforce: bool = False  # a 双报告 receiver, told about major hazards only


def next_level(level: Level) -> Level | None:
    """The next rung up the ladder mine → county → city → province; None above province."""
    index = LADDER.index(level)
    return LADDER[index + 1] if index + 1 < len(LADDER) else None


def normalize_phone(phone: str) -> str:
    """A phone number without spaces, dashes or the +86 / 0086 country prefix, so that numbers
    in the file and senders of inbound replies compare equal."""
    digits = re.sub(r"[\s\-()]", "", phone)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            return digits[len(prefix):]
    if len(digits) == 13 and digits.startswith("86"):
        return digits[2:]
    return digits


class Routing:
    """The validated routing file, queried by the notification producer."""

    def __init__(self, file: RoutingFile) -> None:
        self.file = file
        self._mine: dict[str, tuple[Receiver, ...]] = {}
        self._workforce: dict[str, tuple[Receiver, ...]] = {}
        for code, routes in file.mines.items():
            self._mine[code] = tuple(_receiver(s, Level.MINE, code) for s in routes.receivers)
            self._workforce[code] = tuple(
                _receiver(s, Level.MINE, code, workforce=True) for s in routes.workforce
            )
        self._region: dict[tuple[Level, str], tuple[Receiver, ...]] = {}
        for level in (Level.COUNTY, Level.CITY, Level.PROVINCE):
            table: dict[str, tuple[ReceiverSpec, ...]] = getattr(file.regions, level.value)
            for code, specs in table.items():
                self._region[(level, code)] = tuple(_receiver(s, level, code) for s in specs)

    def receivers_for(self, mine_code: str, regions: Regions, level: Level) -> list[Receiver]:
        """The receivers at `level` for a mine: its own at level mine, else those of the
        region the mine lies in at that level. Empty when nobody is configured there."""
        if level is Level.MINE:
            return list(self._mine.get(mine_code, ()))
        code = regions.code(level)
        return list(self._region.get((level, code), ())) if code is not None else []

    def workforce_for(self, mine_code: str) -> list[Receiver]:
        """The mine's workforce channel (双报告), told about major hazards besides the regulator."""
        return list(self._workforce.get(mine_code, ()))

    def start_level(self, rule: str, *, methane_tier: Level | None = None, finding_level: str | None = None) -> Level:
        """Where a new case is raised first: a methane case at its peak tier (rules.md §5,
        computed by the rules package), any other by the file's per-rule table or default;
        a major over-capacity (超定员组织生产, ``finding_level`` "major") at the regulator."""
        if methane_tier is not None:
            return methane_tier
        level = self.file.start_levels.rules.get(rule, self.file.start_levels.default)
        at_regulator = rule in AT_REGULATOR or (rule == OVER_CAPACITY and finding_level == "major")
        if at_regulator and level is Level.MINE:
            return Level.COUNTY  # rules.md §6, §7: the regulator's, whatever the default
        return level

    def sms_actor(self, phone: str) -> Actor | None:
        """The actor an inbound SMS reply speaks for: a mine user of every mine whose own
        receivers list this number. None when the number is no mine's (regulators and the
        workforce channel do not acknowledge; only the mine does, rules.md §9)."""
        wanted = normalize_phone(phone)
        mines = frozenset(
            code for code, receivers in self._mine.items()
            if any(normalize_phone(n) == wanted for r in receivers for n in r.sms)
        )
        return Actor(who=f"sms:{wanted}", role=Role.MINE, scope=mines) if mines else None


def _receiver(spec: ReceiverSpec, level: Level, code: str, *, workforce: bool = False) -> Receiver:
    hook = spec.webhook
    return Receiver(
        id=spec.id, name=spec.name, level=level, code=code, lang=spec.lang, sms=spec.sms,
        webhook=Webhook(str(hook.url), hook.secret_env) if hook else None, workforce=workforce,
    )


def parse_routing(text: str, *, source: str) -> Routing:
    """Validate routing YAML; `source` names the file in error messages."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise RoutingError(f"{source}: the routing file must be a mapping with keys "
                           f"{', '.join(RoutingFile.model_fields)}")
    try:
        return Routing(RoutingFile.model_validate(raw))
    except ValidationError as exc:
        raise RoutingError(describe(exc, source=source, what="routing file", model=RoutingFile)) from exc


def load_routing(path: Path) -> Routing:
    """Read and validate a routing file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"{path}: cannot read the routing file: {exc}") from exc
    return parse_routing(text, source=str(path))
