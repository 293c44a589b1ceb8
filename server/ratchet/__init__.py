"""Ratchet: governed tools for coding agents, with autonomy earned per action class from evidence."""

__version__ = "0.1.0"
