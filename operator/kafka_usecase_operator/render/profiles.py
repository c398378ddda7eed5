"""Use-case profiles: documented broker defaults per workload type; `spec.kafka.config` overrides them.

Replication settings are clamped to the number of brokers, so a 1-broker development cluster of
any profile still starts; docs/profiles.md (generated from this table) says what each sets and why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    value: str
    why: str


_SAFE = {
    "default.replication.factor": Setting("3", "a topic survives the loss of any one broker"),
    "min.insync.replicas": Setting("2", "acks=all writes need two copies before they are acknowledged"),
    "offsets.topic.replication.factor": Setting("3", "consumer offsets are as durable as the data"),
    "transaction.state.log.replication.factor": Setting("3", "transactions survive a broker loss"),
    "transaction.state.log.min.isr": Setting("2", "as min.insync.replicas, for the transaction log"),
    "unclean.leader.election.enable": Setting("false", "never elect an out-of-sync replica: no silent data loss"),
    "auto.create.topics.enable": Setting("false", "topics are KafkaTopic resources, never typos"),
}

PROFILES: dict[str, dict[str, Setting]] = {
    "general": {
        **_SAFE,
        "log.retention.hours": Setting("72", "three days: room to recover a stopped consumer over a weekend"),
    },
    "analytics": {
        **_SAFE,
        "log.retention.hours": Setting("168", "a week of history for re-processing and backfills"),
        "num.partitions": Setting("12", "wide topics for parallel batch consumers"),
        "compression.type": Setting("lz4", "large, compressible batches; cheap to decompress"),
        "num.io.threads": Setting("16", "many partitions read and written in bulk"),
        "num.network.threads": Setting("8", "many concurrent batch clients"),
        "socket.send.buffer.bytes": Setting("1048576", "throughput over latency"),
        "socket.receive.buffer.bytes": Setting("1048576", "throughput over latency"),
        "log.segment.bytes": Setting("1073741824", "fewer, larger segments for sequential scans"),
    },
    "realtime": {
        **_SAFE,
        "log.retention.hours": Setting("24", "fresh data only; a day covers replays after an incident"),
        "compression.type": Setting("producer", "no broker-side recompression on the hot path"),
        "num.network.threads": Setting("8", "many small requests"),
        "num.replica.fetchers": Setting("4", "followers keep up quickly, so acks=all stays fast"),
        "replica.fetch.wait.max.ms": Setting("50", "followers fetch sooner: lower acks=all latency"),
        "replica.lag.time.max.ms": Setting("10000", "a slow follower leaves the ISR sooner instead of stalling writes"),
        "group.initial.rebalance.delay.ms": Setting("0", "consumers start at once"),
    },
    "critical": {
        **_SAFE,
        "log.retention.hours": Setting("168", "a week to investigate and replay"),
        "num.replica.fetchers": Setting("2", "steady replication without starving clients"),
        "replica.lag.time.max.ms": Setting("30000", "tolerate pauses rather than shrink the ISR under load"),
        "controlled.shutdown.enable": Setting("true", "leadership moves before a broker stops: no failed writes on roll"),
        "auto.leader.rebalance.enable": Setting("true", "leaders return to their preferred brokers after a roll"),
        "log.flush.interval.messages": Setting("10000", "bound what an unclean power loss can take from the page cache"),
    },
}

_REPLICATION_KEYS = ("default.replication.factor", "offsets.topic.replication.factor",
                     "transaction.state.log.replication.factor")
_MIN_ISR_KEYS = ("min.insync.replicas", "transaction.state.log.min.isr")


def broker_defaults(profile: str, brokers: int) -> dict[str, str]:
    """The profile's settings for a cluster of `brokers`, with replication clamped to fit it."""
    settings = {key: setting.value for key, setting in PROFILES[profile].items()}
    replication = min(3, brokers)
    for key in _REPLICATION_KEYS:
        settings[key] = str(min(int(settings[key]), replication))
    for key in _MIN_ISR_KEYS:
        settings[key] = str(max(1, min(int(settings[key]), replication - 1)))
    return settings


def profiles_table() -> str:
    """docs/profiles.md, generated so that the table and the code cannot disagree."""
    lines = ["# Use-case profiles", "",
             "`spec.profile` picks broker defaults for a workload type; any key in `spec.kafka.config` overrides "
             "them. Replication factors are clamped to the number of brokers (at most 3) and `min.insync.replicas` "
             "to one less than that (at least 1), so small development clusters start. Generated from "
             "`operator/kafka_usecase_operator/render/profiles.py` by `make crds`.", ""]
    for name, settings in PROFILES.items():
        lines += [f"## `{name}`", "", "| setting | value | why |", "|---|---|---|"]
        lines += [f"| `{key}` | `{s.value}` | {s.why} |" for key, s in settings.items()]
        lines.append("")
    return "\n".join(lines)
