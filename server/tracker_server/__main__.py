"""``python -m tracker_server``: run the bundled server."""

from tracker_server.main import serve_command

if __name__ == "__main__":
    serve_command(prog_name="python -m tracker_server")
