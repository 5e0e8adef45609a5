"""Senders at the edge: webhook and SMS adapters behind one `Notifier` protocol.

A notifier sends once and never sleeps: it returns a `DeliveryResult` or raises
`RetryableDeliveryError` / `PermanentDeliveryError`; the outbox worker's retry stage decides
when to try again (`alerting.backoff`).
"""
