# syntax=docker/dockerfile:1
# Qianbao's image: the wheel and uv.lock's dependencies in a venv, on a slim runtime that
# runs as a non-root user. `docker compose up` (compose.yaml) serves the demo with a worker
# and PostgreSQL 15.
#
# The build stage runs docker/install.sh, the script tests/test_packaging.py runs too:
# build the wheel, install the locked dependencies (by hash) and the wheel into a fresh
# venv. The test then runs this image's command from that venv and checks /readyz.
#
# linux/amd64 only: the lock is resolved for Linux on x86-64 (the packaged liveness model
# ships for nothing else), so an ARM machine builds and runs it under emulation.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM --platform=linux/amd64 ${PYTHON_IMAGE} AS build
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# uv itself, pinned by hash, as `make install` gets it.
COPY requirements/uv.txt requirements/uv.txt
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements/uv.txt
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    UV=uv sh docker/install.sh /opt/qianbao /usr/local/bin/python3

FROM --platform=linux/amd64 ${PYTHON_IMAGE} AS runtime
# What the installed wheels load from the system (nothing else is needed: the MRZ reader
# is Qianbao's own, no Tesseract): OpenCV's libGL and GLib, MediaPipe's EGL and GLES for
# the liveness check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libegl1 libgles2 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/qianbao --create-home \
    --shell /usr/sbin/nologin qianbao
COPY --from=build /opt/qianbao /opt/qianbao
ENV PATH=/opt/qianbao/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    QIANBAO_VAR_DIR=/var/lib/qianbao \
    QIANBAO_DATABASE_URL=sqlite:////var/lib/qianbao/qianbao.db
USER qianbao
WORKDIR /var/lib/qianbao
# The face and liveness models come inside the installed packages: load them once here,
# with no network, so an image that would download anything at run time fails to build.
RUN --network=none python -c "from qianbao.verification import face, liveness; \
face.load_models(); liveness.load_landmarker().close()"
# Keys, the SQLite database (when no PostgreSQL URL is given) and the sandboxes' files.
VOLUME /var/lib/qianbao
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# `qianbao serve` migrates the database, then serves; `docker run IMAGE worker` runs the
# background jobs, `docker run IMAGE db check` and the other commands the same way.
ENTRYPOINT ["qianbao"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
