"""Pure builders: a KafkaUseCase spec in, Kubernetes manifests and Kafka/ZooKeeper config files out.
Nothing here performs I/O; the handlers apply what these functions return."""
