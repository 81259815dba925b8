"""The bundled Tracker server: events and deployment locks over the v1alpha1 wire format.

Build the ASGI app with :func:`tracker_server.app.create_app`; run the process with
``python -m tracker_server`` or ``tracker-ci server``.
"""

from tracker_ci import __version__

__all__ = ["__version__"]
