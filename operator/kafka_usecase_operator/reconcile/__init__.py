"""Reconcilers of the Kafka-side kinds (KafkaTopic, KafkaUser, KafkaAcl): one object in, an
Outcome out. kopf handlers call them when an object changes; the resync loop calls the same
functions for every object, which is what repairs drift."""
