"""Kafka's default partitioner for keyed records, in Python (murmur2 of the key).

The edge's producer partitions with librdkafka's ``murmur2_random`` (the same function, in C);
this module is the reference the tests check the broker's partitions against, and what any tool
of ours that needs to know a key's partition without producing uses.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

_CACHED_BLOCKS: Final = 1024
_UNPACKERS: dict[int, Callable[[bytes], tuple[int, ...]]] = {}


def murmur2(data: bytes, _m: int = 0x5BD1E995, _mask: int = 0xFFFFFFFF) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``) as an unsigned int.

    Reads the key as little-endian 32-bit words in one ``struct`` call; masks are folded where
    ``(a ^ b) & mask == (a & mask) ^ (b & mask)`` allows (equality with aiokafka's is tested).
    """
    length = len(data)
    h = 0x9747B28C ^ length
    blocks = length >> 2
    unpack = _UNPACKERS.get(blocks)
    if unpack is None:
        unpack = struct.Struct(f"<{blocks}I").unpack_from
        if blocks <= _CACHED_BLOCKS:
            _UNPACKERS[blocks] = unpack
    for k in unpack(data):
        k = (k * _m) & _mask
        h = ((h * _m) ^ ((k ^ (k >> 24)) * _m)) & _mask
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _m) & _mask
    h ^= h >> 13
    h = (h * _m) & _mask
    return h ^ (h >> 15)


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (``toPositive(murmur2) % n``)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
