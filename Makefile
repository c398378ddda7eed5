# A fresh machine needs two commands: `make demo` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/pytest
CHART := charts/kafka-usecase-operator
# Slowest tests are printed at the end of every run.
PYTEST_FLAGS ?= --durations=15

.PHONY: setup venv components crds demo test test-unit test-slow bench bench-kafka bench-twostep bench-lagaware bench-roll lint clean

setup: venv components

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml hack/pyproject.toml clients/python/pyproject.toml clients/python/kafka_usecase_clients/twostep/_scan.c
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python >= 3.11"; exit 1; }
	@echo "setup: creating $(VENV) and installing Python dependencies ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./hack -e './clients/python[forwarder,lagaware]'
	@touch $@

# Real components (Kafka jars, etcd, kube-apiserver, ...): fetched or built once into
# ~/.cache/kafka-usecase-operator (about 20 minutes cold on 2 cores; seconds when cached).
components: venv
	$(BIN)/devstack build

# The CRDs, docs/api.md and docs/profiles.md are generated from the code; a unit test fails on drift.
crds: venv
	$(BIN)/python -m kafka_usecase_operator.api.schema --crds crds --crds $(CHART)/crds --health $(CHART)/docs/argocd \
		--docs docs/api.md --profiles docs/profiles.md

demo: setup
	$(BIN)/devstack demo

# Unit tests, then real Kafka (both modes) and the real control plane. The test session starts
# the devstack it needs (or reuses one you started) and stops what it started.
test: setup
	$(PYTEST) -m "not slow" $(PYTEST_FLAGS)

test-unit: venv
	$(PYTEST) -m unit $(PYTEST_FLAGS)

# Long runs: the Kafka tests again, and the fault tests, on 3 brokers with a 3-node ZooKeeper
# ensemble / 3 KRaft controllers; one mode at a time, so 2 cores are not shared by 12 JVMs.
# Last, the use cases on real pods in the same 3 + 3 shapes (7 real nodes), one mode at a time.
# Every part runs even when an earlier one fails; the recipe fails if any did.
test-slow: setup
	@failed=0; \
	DEVSTACK_BROKERS=3 DEVSTACK_ZOOKEEPERS=3 DEVSTACK_KAFKA_MODES=kraft $(PYTEST) -m "(slow or kafka) and not kube" $(PYTEST_FLAGS) || failed=1; \
	DEVSTACK_BROKERS=3 DEVSTACK_ZOOKEEPERS=3 DEVSTACK_KAFKA_MODES=zookeeper $(PYTEST) -m "(slow or kafka) and not kube" $(PYTEST_FLAGS) || failed=1; \
	$(PYTEST) -m "slow and kube" $(PYTEST_FLAGS) || failed=1; \
	for mode in kraft zookeeper; do \
	  DEVSTACK_BROKERS=3 DEVSTACK_KAFKA_MODES=$$mode $(PYTEST) e2e/test_real_pods.py $(PYTEST_FLAGS) || failed=1; \
	done; \
	exit $$failed

bench: setup
	$(BIN)/python bench/devstack_startup.py

bench-kafka: setup  # topics/users throughput vs batching off (~30 min: includes 10,000 topics)
	$(BIN)/python bench/kafka_state.py

bench-twostep: setup  # 2-step logging: forwarder vs raw producer, send->ack latency, writer cost (~3 min)
	$(BIN)/python bench/twostep.py

bench-lagaware: setup  # lag-aware producer and consumer vs round robin on the 20/20/10 scenario (~12 min)
	$(BIN)/python bench/lagaware.py

bench-roll: setup  # a 3-broker real-pod use case rolled by the operator's roller vs a StatefulSet RollingUpdate (~20 min)
	$(BIN)/python bench/roll.py

lint: venv
	$(BIN)/python -m pyflakes operator hack/devstack tests e2e bench clients/python

clean:
	-$(BIN)/devstack down
	rm -rf $(VENV)
