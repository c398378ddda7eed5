"""The Kafka side: what we want and what is there (model), pure planners from one to the other
(plan), and (next) the narrow admin Protocol, its confluent-kafka adapter and a batching executor."""
