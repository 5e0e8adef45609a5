"""The words people read: SMS text in segments, webhook payloads, and parsing SMS replies.

Text comes from `alerting/templates/<lang>.yaml` (Simplified Chinese by default, English
available), loaded and checked once by `load_templates` and passed in. Placeholders:

| template | placeholders |
|---|---|
| tag | cases |
| cases (several cases in one message) | case_id, n, more |
| reply | case_id |
| reasons.* (each must use `start`) | mine, what, level, state, start |
| finding | subject, rule |
| finding_value | subject, rule, value, unit |
| grouped (several findings) | first, n, more |

`start` is when the finding started (the earliest of the message's findings), in the mine's
own zone (`FindingRef.started_at` as `alerting.store` gives it; a time in UTC or a fixed offset
is shown in the default zone, Asia/Shanghai), written with the language's `time_format`
(strftime): an event found in a back-fill of old data must not read as happening now.

An SMS segment holds 70 characters counted in UTF-16 units (the UCS-2 limit, so a rare
character outside the BMP in a mine name counts twice). A longer text is split into
numbered segments `(i/n)`; the reply instruction is never split across segments.
"""

from __future__ import annotations

import re
import string
import unicodedata
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from alerting.errors import TemplateError
from alerting.lifecycle import CaseState, Level, Reason
from alerting.pipeline.types import FindingRef, Notification
from minewatch.timeutil import local, rfc3339

SEGMENT_LIMIT = 70
DEFAULT_LANG = "zh"
# Break a segment after these rather than mid-word when one lies in the segment's back half.
_BREAKS = frozenset(" ，。；：、,;:)）】")

_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "tag": frozenset({"cases"}),
    "cases": frozenset({"case_id", "n", "more"}),
    "reply": frozenset({"case_id"}),
    "reasons": frozenset({"mine", "what", "level", "state", "start"}),
    "finding": frozenset({"subject", "rule"}),
    "finding_value": frozenset({"subject", "rule", "value", "unit"}),
    "grouped": frozenset({"first", "n", "more"}),
}


class Templates(BaseModel):
    """One language's templates, checked at load: every reason, level and state present,
    no placeholder outside the table in the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lang: str
    tag: str
    cases: str
    reply: str
    reasons: dict[Reason, str]
    finding: str
    finding_value: str
    grouped: str
    levels: dict[Level, str]
    states: dict[CaseState, str]
    rules: dict[str, str] = {}
    rule_fallback: str
    time_format: str

    @model_validator(mode="after")
    def _complete(self) -> Templates:
        for name, table, enum in (("reasons", self.reasons, Reason), ("levels", self.levels, Level),
                                  ("states", self.states, CaseState)):
            missing = [m.value for m in enum if m not in table]
            if missing:
                raise ValueError(f"{name} lacks {', '.join(missing)}")
        for key, allowed in _PLACEHOLDERS.items():
            value = getattr(self, key)
            texts: dict[str, str] = (
                {f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict)
                else {key: value}
            )
            for where, text in texts.items():
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
                if used - allowed:
                    raise ValueError(f"{where} uses {', '.join(sorted(used - allowed))}; "
                                     f"allowed: {', '.join(sorted(allowed))}")
                if key == "reasons" and "start" not in used:
                    raise ValueError(f"{where} must say when the finding started ({{start}})")
        if not {"%d", "%H"} <= {self.time_format[i:i + 2] for i in range(len(self.time_format) - 1)}:
            raise ValueError("time_format must give the date and the time (at least %d and %H)")
        return self

    def rule_name(self, rule: str) -> str:
        """The readable name of a rule id, or the generic word for an alert."""
        return self.rules.get(rule, self.rule_fallback)


def load_templates(lang: str = DEFAULT_LANG) -> Templates:
    """Load and check the packaged templates of one language (`zh` or `en`)."""
    source = f"alerting/templates/{lang}.yaml"
    try:
        text = resources.files("alerting").joinpath("templates", f"{lang}.yaml").read_text("utf-8")
    except FileNotFoundError as exc:
        raise TemplateError(f"{source}: no templates for language {lang!r}") from exc
    return parse_templates(text, source=source)


def parse_templates(text: str, *, source: str) -> Templates:
    """Check templates given as YAML text; `source` names the file in errors."""
    try:
        return Templates.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise TemplateError(f"{source}: invalid templates: {exc}") from exc


def render_text(note: Notification, t: Templates) -> str:
    """The whole message as one text (for webhooks and logs): tag, body, reply instruction."""
    body, tail = _parts(note, t)
    return body + tail


def render_sms(note: Notification, t: Templates, *, limit: int = SEGMENT_LIMIT) -> tuple[str, ...]:
    """The message as SMS segments, each at most `limit` UTF-16 units."""
    body, tail = _parts(note, t)
    return split_segments(body, tail, limit=limit)


def webhook_payload(note: Notification, t: Templates) -> dict[str, Any]:
    """The webhook body of the contract: `{"id", "case", "reason"}`, plus the readable text."""
    return {
        "id": note.id,
        "reason": note.reason.value,
        "case": {
            "id": note.case_ids[0],
            "ids": list(note.case_ids),
            "mine": note.mine,
            "mine_name": note.mine_name,
            "rule": note.rule,
            "level": note.level.value,
            "severity": note.severity.value,
            "state": note.case_state.value if note.case_state else None,
            "findings": [_finding_json(f) for f in note.findings],
        },
        "created_at": rfc3339(note.created_at),
        "text": render_text(note, t),
    }


def split_segments(body: str, tail: str = "", *, limit: int = SEGMENT_LIMIT) -> tuple[str, ...]:
    """Split `body + tail` into segments of at most `limit` UTF-16 units, numbered `(i/n)`
    when there is more than one; `tail` (the reply instruction) stays whole in the last."""
    if width(body + tail) <= limit:
        return (body + tail,)
    total = 9  # guess one-digit numbering; widen the prefix if the count needs more digits
    while True:
        prefix_width = width(_prefix(total, total))
        if limit - prefix_width < 10:
            raise TemplateError(f"segment limit {limit} leaves no room for text")
        chunks = _pack(body, tail, limit - prefix_width)
        if len(str(len(chunks))) <= len(str(total)):
            break
        total = len(chunks)
    return tuple(_prefix(i, len(chunks)) + c for i, c in enumerate(chunks, 1))


def width(text: str) -> int:
    """Length in UTF-16 code units, the unit SMS segment limits count."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


# An acknowledgement reply: `1`, a separator (may be omitted before a letter), the case id;
# quotes copied from the message and a closing stop are tolerated.
_REPLY = re.compile(
    r"""^["'“”‘’]?1(?:[\s,:;#]+|(?=[A-Za-z]))["'“”‘’]?([A-Za-z0-9][A-Za-z0-9_-]*)["'“”‘’]?[.!]?$"""
)


def parse_reply(text: str) -> str | None:
    """The case id an inbound SMS acknowledges (`1 <case id>`), or None when it is not an
    acknowledgement. Full-width digits, letters, spaces and punctuation are folded (NFKC)."""
    folded = unicodedata.normalize("NFKC", text).strip().replace("。", ".")
    match = _REPLY.match(folded)
    return match.group(1) if match else None


def _parts(note: Notification, t: Templates) -> tuple[str, str]:
    """(body, tail): the tagged body and the reply instruction (empty when not asked for)."""
    first = note.case_ids[0]
    more = len(note.case_ids) - 1
    cases = t.cases.format(case_id=first, n=len(note.case_ids), more=more) if more else first
    body = t.tag.format(cases=cases) + t.reasons[note.reason].format(
        mine=note.mine_name,
        what=_what(note.findings, t),
        level=t.levels[note.level],
        state=t.states[note.case_state] if note.case_state else "",
        start=start_text(note.findings, t),
    )
    asks_ack = note.ack_by_reply and note.case_state in (CaseState.OPEN, None)
    return body, t.reply.format(case_id=first) if asks_ack else ""


def start_text(findings: tuple[FindingRef, ...], t: Templates) -> str:
    """When the earliest of `findings` started, as the mine's local date and time."""
    first = min(findings, key=lambda f: f.started_at).started_at
    when = first if isinstance(first.tzinfo, ZoneInfo) else local(first)
    return when.strftime(t.time_format)


def _what(findings: tuple[FindingRef, ...], t: Templates) -> str:
    first = _finding_text(findings[0], t)
    if len(findings) == 1:
        return first
    return t.grouped.format(first=first, n=len(findings), more=len(findings) - 1)


def _finding_text(f: FindingRef, t: Templates) -> str:
    subject = f.label or f.subject
    rule = t.rule_name(f.rule)
    if f.value is None:
        return t.finding.format(subject=subject, rule=rule)
    value = f"{f.value:.2f}".rstrip("0").rstrip(".")
    return t.finding_value.format(subject=subject, rule=rule, value=value, unit=f.unit or "")


def _finding_json(f: FindingRef) -> dict[str, Any]:
    return {
        "id": f.id, "case_id": f.case_id, "rule": f.rule, "kind": f.kind, "subject": f.subject,
        "label": f.label, "started_at": rfc3339(f.started_at), "value": f.value, "unit": f.unit,
    }


def _prefix(index: int, total: int) -> str:
    return f"({index}/{total})"


def _pack(body: str, tail: str, cap: int) -> list[str]:
    """Cut `body` into pieces of at most `cap` units at natural breaks, then add `tail` to the
    last piece if it fits, else as a piece of its own."""
    tail = tail.strip()
    if width(tail) > cap:
        raise TemplateError(f"the reply instruction {tail!r} does not fit in one segment")
    pieces: list[str] = []
    rest = body.strip()
    while width(rest) > cap:
        cut = _cut(rest, cap)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    if tail:
        joiner = " " if pieces and pieces[-1][-1:].isascii() and tail[:1].isascii() else ""
        if pieces and width(pieces[-1] + joiner + tail) <= cap:
            pieces[-1] += joiner + tail
        else:
            pieces.append(tail)
    return pieces


def _cut(text: str, cap: int) -> int:
    """How many characters of `text` go in a piece of at most `cap` units: after the last break
    in the back half of the piece if there is one, else as many as fit."""
    used = fit = 0
    for char in text:
        used += width(char)
        if used > cap:
            break
        fit += 1
    for index in range(fit, fit // 2, -1):
        if text[index - 1] in _BREAKS:
            return index
    return fit
