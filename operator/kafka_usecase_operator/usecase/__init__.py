"""The use-case side: a KafkaUseCase reconciled into a cluster that runs, is kept as declared and is changed by a Kafka-aware roller."""
