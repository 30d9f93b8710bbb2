"""PostgreSQL migrations (package data; read with importlib.resources)."""
