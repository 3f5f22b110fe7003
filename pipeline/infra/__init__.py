"""Local infrastructure owned by the project (the Kafka broker launcher)."""
