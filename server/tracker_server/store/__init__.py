"""Persistence functions: keyword-only, each runs inside the caller's transaction."""
