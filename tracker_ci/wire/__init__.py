"""The wire models, one module per resource; ``tracker_ci.models`` is their one public face."""
