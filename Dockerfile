# The operator's image: `docker build -t kafka-usecase-operator .` (e2e/kind.sh builds it for kind).
# It also holds the 2-step logging forwarder (`twostep-forwarder`), which the chart can run as a DaemonSet.
# Two stages: wheels are built with pip's toolchain, the runtime stage gets only the wheels.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A C compiler for the forwarder's hot loop (clients/python/.../_scan.c); only this stage has it.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY clients/python/ clients/python/
RUN pip wheel --no-cache-dir --wheel-dir /wheels . './clients/python[forwarder]'

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN groupadd --gid 10001 operator && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin operator
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels kafka-usecase-operator 'kafka-usecase-clients[forwarder]' && rm -rf /wheels
# Numeric, so Kubernetes can check runAsNonRoot without resolving a name.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["kafka-usecase-operator"]
CMD ["run"]
