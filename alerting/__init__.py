"""Supervised-rectification cases: lifecycle, routing, escalation, notification pipeline, notifiers.

The pure core (`lifecycle`, `checklist`, `routing`, `escalation`, `messages`, `backoff`,
`pipeline`) takes `now` and never touches a database, a clock or the environment; only
`notifiers/` (and the store/outbox/worker modules built on this API) do IO.
"""
