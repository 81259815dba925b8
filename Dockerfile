# The image of the GitHub Action, which can also serve the bundled Tracker server.
#
#   action:  action.yml runs /usr/local/bin/tracker-action (post: tracker-action-post)
#   server:  docker run --rm -p 8080:8080 -v tracker-data:/data IMAGE
#            (the default command is `tracker-ci server --host 0.0.0.0`, SQLite in /data;
#            set TRACKER_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
#   CLI:     docker run --rm IMAGE deploy start --service api ...
#
# No USER (the runner mounts the workspace and file-command files owned by its own user and
# expects root in the container) and no WORKDIR (the runner sets /github/workspace).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TRACKER_DATABASE_URL=sqlite:////data/tracker.db

# Only what the build needs (see .dockerignore); everything is installed at build time,
# so the action needs no network at run time except to reach the Tracker and GitHub APIs.
COPY pyproject.toml README.md docker/constraints.txt /tmp/tracker-ci/
COPY tracker_ci /tmp/tracker-ci/tracker_ci
COPY server /tmp/tracker-ci/server

# The project at the version of this checkout, with the extras the action and the server
# use, its dependencies pinned to the versions the test suite ran (docker/constraints.txt);
# then the two entrypoints that action.yml names, written by the module they start.
RUN pip install --no-cache-dir --constraint /tmp/tracker-ci/constraints.txt \
        "/tmp/tracker-ci[github,gitlab,server,postgres]" \
    && rm -rf /tmp/tracker-ci \
    && python -m tracker_ci.ci.github_action --install-entrypoints /usr/local/bin \
    && mkdir -p /data

EXPOSE 8080
ENTRYPOINT ["tracker-ci"]
CMD ["server", "--host", "0.0.0.0", "--port", "8080"]
