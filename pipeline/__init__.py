"""Usage metering and billing pipeline.

gateway plugins -> ingest edge -> Kafka -> stream workers -> ClickHouse -> invoices.
"""

__version__ = "0.1.0"
