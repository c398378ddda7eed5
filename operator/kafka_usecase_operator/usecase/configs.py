"""Per-pod configuration versions, and what a configuration change needs: pure.

A component's ConfigMap holds every version of its files that a pod still runs or is about to
run (keys `<version>.<file>`, the version a hash of the files) and one pointer per pod
(`pod-<ordinal>`: the version that pod starts with). The pod's launcher copies its version's files
into memory and starts from them. A pod restarted for any other reason (a crash, a node lost)
starts with the version it ran before: only the roller moves a pointer, right before it restarts
that pod, or without a restart when the change is one Kafka applies at runtime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

POINTER_PREFIX = "pod-"
LAUNCHER = "launch.sh"
# Broker settings Kafka can change at runtime but only per broker (listeners, their security):
# the operator owns them, and a cluster-wide default of them is refused.
PER_BROKER_PREFIXES = ("listener", "advertised.", "ssl.", "sasl.", "log.dirs", "broker.id", "node.id")

LAUNCH_SCRIPT = """#!/bin/bash
# Starts this pod with the configuration version the operator assigned it (kafka-usecase-operator):
# never a newer one it has not rolled this pod to yet.
set -euo pipefail
ordinal="${HOSTNAME##*-}"
version="$(cat "/config/%(prefix)s${ordinal}" 2>/dev/null || cat /config/latest)"
rm -rf /run/kafka/config && mkdir -p /run/kafka/config
for file in /config/"${version}".*; do
  cp "${file}" "/run/kafka/config/${file#/config/${version}.}"
done
echo "${version}" > /run/kafka/config/version
exec /bin/bash /run/kafka/config/start.sh
""" % {"prefix": POINTER_PREFIX}


def version_of(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]


def pointers(data: dict[str, str]) -> dict[int, str]:
    """Each pod ordinal's configuration version, from a ConfigMap's data."""
    return {int(key[len(POINTER_PREFIX):]): value for key, value in data.items()
            if key.startswith(POINTER_PREFIX) and key[len(POINTER_PREFIX):].isdigit()}


def files_of(data: dict[str, str], version: str) -> dict[str, str] | None:
    """One version's files, or None when the ConfigMap no longer (or never) held it."""
    prefix = f"{version}."
    found = {key[len(prefix):]: value for key, value in data.items() if key.startswith(prefix)}
    return found or None


def versioned_data(files: dict[str, str], replicas: int, observed: dict[str, str] | None,
                   advance: frozenset[int] = frozenset()) -> dict[str, str]:
    """The ConfigMap data: the desired files as the newest version, every version a pod still points
    at, and the pointers. A pod without a pointer (new, or the ConfigMap predates versions) starts
    with the newest version; `advance`: ordinals moved to it now."""
    observed = observed or {}
    latest = version_of(files)
    current = {ordinal: version for ordinal, version in pointers(observed).items()
               if ordinal < replicas and files_of(observed, version) is not None}
    for ordinal in range(replicas):
        if ordinal in advance or ordinal not in current:
            current[ordinal] = latest
    data = {LAUNCHER: LAUNCH_SCRIPT, "latest": latest}
    for version in {*current.values(), latest}:
        kept = files if version == latest else files_of(observed, version)
        data.update({f"{version}.{name}": text for name, text in kept.items()})
    data.update({f"{POINTER_PREFIX}{ordinal}": version for ordinal, version in sorted(current.items())})
    return data


def properties(text: str) -> dict[str, str]:
    """A Java properties file of `key=value` lines (the operator's own rendering: no continuations)."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            result[key.strip()] = value.strip()
    return result


@dataclass(frozen=True)
class ConfigChange:
    restart: tuple[str, ...]  # why a pod must restart to take the new version (empty: it need not)


def change_between(running: dict[str, str] | None, desired: dict[str, str], properties_file: str | None,
                   dynamic: frozenset[str]) -> ConfigChange:
    """What moving a pod from its `running` files to `desired` needs. Only keys of `properties_file`
    (the brokers' server.properties) that Kafka can change at runtime, cluster-wide, avoid a restart;
    any other difference restarts. `running` None: the pod's version is unknown: restart."""
    if running is None:
        return ConfigChange(("configuration version unknown",))
    if running == desired:
        return ConfigChange(())
    reasons = [f"{name} changed" for name in sorted(set(running) | set(desired))
               if name != properties_file and running.get(name) != desired.get(name)]
    if properties_file:
        old, new = properties(running.get(properties_file, "")), properties(desired.get(properties_file, ""))
        static = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not runtime_settable(k, dynamic))
        if static:
            reasons.append(f"static settings changed: {', '.join(static)}")
    return ConfigChange(tuple(reasons))


def runtime_settable(key: str, dynamic: frozenset[str]) -> bool:
    return key in dynamic and not key.startswith(PER_BROKER_PREFIXES)


@dataclass(frozen=True)
class DynamicPlan:
    set: dict[str, str]
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.set or self.delete)


def dynamic_plan(desired: dict[str, str], observed_defaults: dict[str, str], dynamic: frozenset[str]) -> DynamicPlan:
    """The cluster-wide dynamic broker defaults the operator keeps equal to the spec's runtime-settable
    settings (it owns that scope: a default set there by hand is drift, put back or removed)."""
    wanted = {k: v for k, v in desired.items() if runtime_settable(k, dynamic)}
    return DynamicPlan({k: v for k, v in sorted(wanted.items()) if observed_defaults.get(k) != v},
                       tuple(sorted(k for k in observed_defaults if k not in wanted)))
