"""2-step logging: applications append events to local disk (`EventLog`, standard library only);
the forwarder daemon (`twostep-forwarder`) ships them to Kafka; audit counts at every stage and a
completeness report (`twostep-audit report`) prove nothing was lost."""

from kafka_usecase_clients.twostep.writer import DiskBudgetExceeded, EventLog

__all__ = ["EventLog", "DiskBudgetExceeded"]
