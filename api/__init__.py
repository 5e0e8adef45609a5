"""The HTTP API v1: FastAPI app laid out by domain; read-only except case actions and accidents."""
