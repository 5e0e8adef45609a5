"""Supervised-rectification cases: list, detail with findings/checklist/notifications/history, actions."""
