"""Stream workers: the Kafka consumer loop around the pure metering core (pipeline/metering)."""
