# The operator's image: `docker build -t REGISTRY/kafka-usecase-operator:TAG .`
# It also holds the 2-step logging forwarder (`twostep-forwarder`), which the chart can run as a
# DaemonSet, and the Python clients (confluent-kafka), which the e2e tests' client pods use.
# Dependencies are installed before the code is copied: a code change rebuilds only the last layers.
# PYTHON_IMAGE: any Debian bookworm base with Python 3.11 (the devstack's is made with debootstrap);
# offline builds put wheels into images/wheels/ and pass --build-arg PIP_NO_INDEX=1.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PIP_NO_INDEX=""
ENV PIP_NO_INDEX=${PIP_NO_INDEX} PIP_FIND_LINKS=/wheels PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the forwarder's hot loop (clients/python/.../_scan.c); only this stage has it.
RUN command -v gcc >/dev/null || { apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
      && rm -rf /var/lib/apt/lists/*; }
RUN python3 -m venv /opt/venv
COPY images/wheels/ /wheels/
COPY pyproject.toml /src/pyproject.toml
COPY clients/python/pyproject.toml /src/clients/python/pyproject.toml
# Only the dependencies, read from the two pyproject.toml files.
RUN python3 -c 'import tomllib; \
p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
c = tomllib.load(open("/src/clients/python/pyproject.toml", "rb"))["project"]; \
print("\n".join([d for d in p["dependencies"] if not d.startswith("kafka-usecase-clients")] \
      + c["dependencies"] + c.get("optional-dependencies", {}).get("forwarder", [])))' > /src/requirements.txt \
    && /opt/venv/bin/pip install "setuptools>=77" -r /src/requirements.txt
COPY README.md /src/README.md
COPY operator/ /src/operator/
COPY clients/python/ /src/clients/python/
# No build isolation: the venv's own setuptools builds them (an offline build could not fetch one).
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation /src/clients/python /src

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Not "operator": Debian has a system group of that name (gid 37).
RUN groupadd --gid 10001 kuo && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kuo
COPY --from=build /opt/venv /opt/venv
# Numeric, so Kubernetes can check runAsNonRoot without resolving a name.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["kafka-usecase-operator"]
CMD ["run"]
