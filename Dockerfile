# The image of any one package of the workspace: every service, and the Stripe sandbox.
# Build context: the repository root. PACKAGE is the importable package:
#   docker build --build-arg PACKAGE=ticketing_tickets -t ticketing/tickets .
#   podman build --build-arg PACKAGE=ticketing_web -t ticketing/web .
# The base images are build arguments too, for a registry mirror or a local stand-in.
# Plain Dockerfile syntax only (no BuildKit extensions), so docker, podman and buildah
# all build it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- sources: the workspace, and beside it only the files dependency resolution reads ----
FROM ${PYTHON_IMAGE} AS sources
WORKDIR /src
COPY . .
# Every workspace member's pyproject.toml in its place, so the workspace resolves. The
# build stage copies this tree before the code: its third-party install stays cached
# until the lock or a pyproject changes, whatever else was edited.
RUN mkdir /manifests \
    && cp uv.lock /manifests/ \
    && find . -name pyproject.toml -exec cp --parents {} /manifests/ \;

# ---- build: a virtual environment with the locked dependencies of PACKAGE only ----
FROM ${PYTHON_IMAGE} AS build
ARG PACKAGE
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /app

# 1. Third-party dependencies, without dev dependencies and without ticketing-common's
#    `embedded` extra (the servers `ticketing up` embeds never go into an image).
COPY --from=sources /manifests ./
RUN test -n "${PACKAGE}" \
    && uv sync --frozen --no-dev --package "${PACKAGE}" --no-editable --no-install-workspace

# 2. The code: PACKAGE and the workspace packages it depends on, installed as regular
#    packages into /app/.venv/lib/python3.11/site-packages (migrations, templates and
#    static files are package data).
COPY --from=sources /src ./
# uv's lock file in the environment is writable by everyone (0666) and is of no use at
# run time: without it nothing under /app/.venv is writable to the app's user.
RUN uv sync --frozen --no-dev --package "${PACKAGE}" --no-editable \
    && rm -f .venv/.lock

# ---- runtime: python slim + the virtual environment, as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
ARG PACKAGE
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home app
# Owned by root, readable by all: the user the app runs as cannot modify its own code, even
# where the root filesystem is writable. (`skaffold dev` syncs into a writable copy the dev
# overlay makes, not into the image.)
COPY --from=build /app/.venv /app/.venv
# uvicorn reads its APP argument from UVICORN_APP, so one CMD serves every package.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UVICORN_APP="${PACKAGE}.app:create_app"
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Migrations: `python -m ticketing_common.migrate <package>` (the pod's initContainer).
CMD ["uvicorn", "--factory", "--host", "0.0.0.0", "--port", "8000"]
