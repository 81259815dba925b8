"""tracker-ci: make every deployment visible and safe (client, CLI and CI integrations)."""

__version__ = "0.1.0"
