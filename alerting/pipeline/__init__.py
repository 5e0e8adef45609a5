"""The notification pipeline: stages with one signature, one per module, composed in `builder`.

`fan_out` turns a case's `Notify` effect into notifications; `run` passes them through the
enqueue stages (group → inhibit → silence → dedup) in the builder's order. Retry, send and
record are the deliverer's steps (`alerting.delivery`), run in order by `builder.deliver`.
"""

from __future__ import annotations

from alerting.pipeline.builder import DELIVERY, ENQUEUE, ORDER, NamedStage, deliver, run

__all__ = ["DELIVERY", "ENQUEUE", "ORDER", "NamedStage", "deliver", "run"]
