"""Seeded, deterministic fake mines that speak the MQTT contract (readings, cards, stations)."""
