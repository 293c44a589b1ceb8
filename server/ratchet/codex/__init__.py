"""Codex's edge: its hook events decided by the gate (hooks.py), and its app-server as a client (app.py)."""
