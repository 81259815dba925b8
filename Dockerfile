# The images of tracker-ci, two targets of one recipe:
#
#   server:  the bundled Tracker server and the whole CLI (every extra): the image the
#            GitLab templates run, and a service container
#            docker run --rm -p 8080:8080 -v tracker-data:/data IMAGE
#            (`tracker-ci server --host 0.0.0.0`, SQLite in /data; set
#            TRACKER_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
#   action:  the GitHub Action (the last stage: what action.yml's `image: Dockerfile` builds):
#            the client and PyGithub only; action.yml runs /usr/local/bin/tracker-action
#            (post: tracker-action-post)
#
# Each installs its pinned dependencies (docker/requirements-*.txt, the versions the tests
# ran) in a layer before the code, so a code change rebuilds only the last layer. No USER
# (the runner mounts the workspace and file-command files owned by its own user and expects
# root in the container) and no WORKDIR (the runner sets /github/workspace).
FROM python:3.11.13-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---------------------------------------------------------------------------- server
FROM base AS server

ENV TRACKER_DATABASE_URL=sqlite:////data/tracker.db

COPY docker/requirements-server.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --requirement /tmp/requirements.txt && rm /tmp/requirements.txt

COPY pyproject.toml README.md /tmp/tracker-ci/
COPY tracker_ci /tmp/tracker-ci/tracker_ci
COPY server /tmp/tracker-ci/server
RUN pip install --no-cache-dir --no-deps /tmp/tracker-ci \
    && rm -rf /tmp/tracker-ci \
    && mkdir -p /data

EXPOSE 8080
ENTRYPOINT ["tracker-ci"]
CMD ["server", "--host", "0.0.0.0", "--port", "8080"]

# ---------------------------------------------------------------------------- action
FROM base AS action

COPY docker/requirements-action.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --requirement /tmp/requirements.txt && rm /tmp/requirements.txt

# The package without its server (the action never serves); then the two entrypoints that
# action.yml names, written by the module they start.
COPY pyproject.toml README.md /tmp/tracker-ci/
COPY tracker_ci /tmp/tracker-ci/tracker_ci
COPY server /tmp/tracker-ci/server
RUN pip install --no-cache-dir --no-deps /tmp/tracker-ci \
    && rm -rf /tmp/tracker-ci \
    && python -m tracker_ci.ci.github_action --install-entrypoints /usr/local/bin

ENTRYPOINT ["tracker-ci"]
CMD ["--help"]
