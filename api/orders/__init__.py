"""Shutdown orders (停产整顿) of a mine with their trigger events, minimum end and state."""
