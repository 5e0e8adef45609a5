"""What the simulator CLI tells a person, in Simplified Chinese (default) or English."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]

_TEMPLATES: dict[str, dict[str, str]] = {
    "zh": {
        "start": "模拟开始: {mines} 个矿, 种子 {seed}, {start} 至 {end}, 输出 {target}",
        "progress": (
            "模拟时间 {sim}  读数 {readings:,}  卡读 {cards:,}  分站 {stations:,}  消息 {messages:,}  速率 {rate:,.0f} 条/秒"
        ),
        "summary": (
            "完成: 读数 {readings:,}, 卡读 {cards:,}, 分站状态 {stations:,}; 消息 {messages:,} 条 "
            "({items:,} 项, {mb:.1f} MB), 延迟投递 {late:,} 条; "
            "用时 {secs:.1f} 秒, {rate:,.0f} 项/秒"
        ),
        "acked": "MQTT: 已发布 {published:,} 条, 已确认 (PUBACK) {acked:,} 条",
        "forever": "不限",
        "stopped": "已中断, 正在等待未确认的消息",
        "error": "错误: {error}",
    },
    "en": {
        "start": "simulating {mines} mines, seed {seed}, {start} to {end}, output {target}",
        "progress": (
            "sim time {sim}  readings {readings:,}  card reads {cards:,}  stations {stations:,}  "
            "messages {messages:,}  rate {rate:,.0f} items/s"
        ),
        "summary": (
            "done: {readings:,} readings, {cards:,} card reads, {stations:,} station states; "
            "{messages:,} messages ({items:,} items, {mb:.1f} MB), {late:,} delivered late; "
            "{secs:.1f} s, {rate:,.0f} items/s"
        ),
        "acked": "MQTT: {published:,} published, {acked:,} acknowledged (PUBACK)",
        "forever": "forever",
        "stopped": "interrupted, waiting for unacknowledged messages",
        "error": "error: {error}",
    },
}


def say(lang: Lang, name: str, **values: object) -> str:
    """The named message in `lang`, filled with `values`."""
    return _TEMPLATES[lang][name].format(**values)
