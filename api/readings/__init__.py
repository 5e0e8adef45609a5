"""Readings of one point: raw, or bucketed into min / max / avg / last per step."""
