"""Stream workers: the Faust adapter around the pure metering core (pipeline/metering)."""
