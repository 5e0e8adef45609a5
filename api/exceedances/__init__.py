"""Exceedance events (超限事件, rules.md §2) of a mine with their episodes."""
