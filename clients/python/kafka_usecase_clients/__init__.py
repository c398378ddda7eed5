"""Client libraries for applications whose Kafka runs on kafka-usecase-operator clusters."""
