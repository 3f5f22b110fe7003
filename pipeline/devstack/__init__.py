"""Development tooling: what starts local infrastructure or fakes traffic. Never imported by a
production module (tests/test_layout.py checks); the command line reaches it lazily.

* :mod:`.kafka_launcher`, :mod:`.clickhouse_launcher` (+ :mod:`.clickhouse_server`, the server
  process): the local Kafka broker and ClickHouse server of ``dev``, the tests and CI;
* :mod:`.dev` (``python -m pipeline dev``) and :mod:`.processes` (its worker processes);
* :mod:`.samples`, :mod:`.traffic`: realistic plugin payloads and sample deliveries;
* :mod:`.bench` (``python -m pipeline bench``).
"""
