"""Kafka's default partitioner in Python: the Java client's vectors and aiokafka's function."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest.partitioner import kafka_partition, murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed Java ints).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "java"), JAVA_VECTORS.items())
def test_murmur2_matches_the_java_client(data: bytes, java: int) -> None:
    assert murmur2(data) == java & 0xFFFFFFFF


@given(st.binary(max_size=600))
def test_murmur2_matches_aiokafka(data: bytes) -> None:
    assert murmur2(data) & 0x7FFFFFFF == aiokafka_murmur2(data) & 0x7FFFFFFF


@given(st.binary(min_size=1, max_size=80), st.integers(min_value=1, max_value=64))
def test_partition_matches_the_default_partitioner(key: bytes, partitions: int) -> None:
    everything = list(range(partitions))
    assert kafka_partition(key, partitions) == DefaultPartitioner()(key, everything, everything)
