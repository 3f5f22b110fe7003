"""Peak memory per process and the machine's description."""

from __future__ import annotations

import subprocess
import sys

from pipeline.devstack.bench.host import describe_machine, peak_rss_mb, reset_peak_rss, rss_mb


def test_peak_memory_of_this_process_follows_an_allocation_and_can_be_restarted() -> None:
    assert reset_peak_rss()  # earlier tests in this process may have set a higher mark
    before = peak_rss_mb()
    assert before is not None and before > 0
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"\x01" * len(block[::4096])  # touch every page: resident
    grown = peak_rss_mb()
    assert grown is not None and grown >= before + 60
    del block
    assert reset_peak_rss()
    current, restarted = rss_mb(), peak_rss_mb()
    assert current is not None and restarted is not None
    assert restarted < grown - 50  # the mark starts again near the current size
    assert restarted >= current - 1


def test_peak_memory_of_another_process_is_its_own() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; b = bytearray(96 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
            "print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        peak = peak_rss_mb(child.pid)
        assert peak is not None and 96 <= peak < 400
    finally:
        child.communicate(b"")
    assert peak_rss_mb(child.pid) is None  # gone: unknown, not zero


def test_the_machine_description_says_what_shapes_the_numbers() -> None:
    machine = describe_machine(kafka="4.1.1")
    assert machine["cpus"] >= 1 and 1 <= machine["usable_cpus"] <= machine["cpus"]
    assert machine["memory_gib"] > 0
    assert machine["python"].split()[-1].startswith("3.")
    assert machine["packages"]["aiokafka"] and machine["packages"]["orjson"]
    assert len(machine["load_average"]) == 3 and machine["kafka"] == "4.1.1"
