"""kafka-usecase-operator: one dedicated Kafka cluster per use case, and the topics, SCRAM users
and ACLs inside it, reconciled from Kubernetes custom resources."""

__version__ = "0.1.0.dev0"
