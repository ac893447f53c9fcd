# The image runs the project's wheel (packages and templates inside it) on the locked runtime
# dependencies: no checkout, no editable install. tests/integration/test_wheel.py builds and checks
# the same wheel the way this file does.
FROM python:3.11-slim AS build
WORKDIR /src
# The build context is the checkout less what .dockerignore leaves out.
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# Dependencies first (cached until the lock changes), every file checked against its hash.
COPY requirements/runtime.txt /tmp/runtime.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/runtime.txt && rm /tmp/runtime.txt
COPY --from=build /wheels /wheels
# /metrics: where docker-compose.yml mounts PROMETHEUS_MULTIPROC_DIR; a new volume takes this owner.
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels \
    && useradd --system app && mkdir /metrics && chown app /metrics
# Nothing is read from here but an optional .env; the code runs from site-packages.
WORKDIR /app
USER app
EXPOSE 5001
CMD ["python", "-m", "ingress"]
