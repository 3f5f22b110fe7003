"""``python -m pipeline bench --hostile``: an attack campaign against a running edge and worker.

It starts (or uses the configured) Kafka and ClickHouse, one edge process and one worker process
on topics and a consumer group of their own, then:

1. posts ``bodies`` requests of :mod:`~pipeline.devstack.bench.hostile_bodies` from ``clients``
   keep-alive connections (every class of hostile input, mixed with valid plugin batches);
2. meanwhile a burst of many more connections than the edge serves at once (saturation: the
   edge must answer 503 with Retry-After, never fail), a few stalled uploads (408), and records
   that bypass the edge straight to the events topic (the worker's record checks);
3. waits until the worker's group has committed every record of every partition;
4. reads the dead-letter topic back.

The report: bodies sent and responses by status (and by class), 5xx answers other than the
documented 503 under saturation, connection failures, the edge's peak RSS, worker restarts
(the worker is supervised and every exit counted), dead letters by kind and reason, and the
partitions whose lag did not return to 0. Not a timed test: a report (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.devstack.bench.host import peak_rss_mb
from pipeline.devstack.bench.hostile_bodies import Attack, HostileBodies
from pipeline.devstack.bench.hostile_kafka import dead_letters, lag_by_partition, poison
from pipeline.devstack.bench.http_client import HttpTarget, KeepAliveConnection, post_request
from pipeline.devstack.bench.progress import Say
from pipeline.devstack.bench.report import bench_clickhouse, drop_database
from pipeline.devstack.kafka_launcher import local_bootstrap
from pipeline.devstack.local_processes import free_ports
from pipeline.devstack.processes import start_worker, stop_worker, worker_env
from pipeline.errors import InfrastructureError
from pipeline.kafka import group_lag
from pipeline.settings import Settings

#: the edge's body read timeout during the campaign (stalled uploads end quickly)
BODY_TIMEOUT_S = 2.0
DRAIN_TIMEOUT_S = 600.0
SATURATION_CLIENTS = 96
STALLED_UPLOADS = 20


@dataclass
class Campaign:
    """Everything the report says, filled in as the campaign runs."""

    bodies: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: dict[str, Counter[int]] = field(default_factory=dict)
    saturated_503: int = 0
    other_5xx: list[str] = field(default_factory=list)
    connection_failures: int = 0
    stalled_408: int = 0
    poison_records: int = 0
    worker_restarts: int = 0
    edge_alive: bool = True
    edge_peak_rss_mb: float | None = None
    dead_letters: Counter[str] = field(default_factory=Counter)
    stalled_partitions: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def note(self, kind: str, status: int, body: bytes) -> None:
        self.bodies += 1
        self.statuses[status] += 1
        self.by_kind.setdefault(kind, Counter())[status] += 1
        if status == 0:
            self.connection_failures += 1
        elif status == 503 and b"busy" in body:
            self.saturated_503 += 1
        elif status >= 500:
            self.other_5xx.append(f"{kind}: {status} {body[:200]!r}")

    def lines(self) -> list[str]:
        out = [
            f"Hostile campaign: {self.bodies:,} bodies in {self.seconds:.0f} s",
            "  responses: "
            + ", ".join(
                f"{status or 'no answer'}: {n:,}" for status, n in sorted(self.statuses.items())
            ),
            f"  5xx other than the documented 503 under saturation: {len(self.other_5xx)}",
            f"  503 busy (saturation, with Retry-After): {self.saturated_503:,}",
            f"  stalled uploads answered 408: {self.stalled_408}/{STALLED_UPLOADS}",
            f"  connections without an answer: {self.connection_failures:,}",
            f"  edge alive at the end: {'yes' if self.edge_alive else 'NO'}; peak RSS "
            + (f"{self.edge_peak_rss_mb:.0f} MiB" if self.edge_peak_rss_mb else "unknown"),
            f"  worker restarts: {self.worker_restarts}",
            f"  records sent past the edge to the worker: {self.poison_records:,}",
            "  partitions stalled (lag > 0 after the drain): "
            + (str(self.stalled_partitions) if self.stalled_partitions else "none"),
            "  by class (status: count):",
        ]
        for kind, counts in sorted(self.by_kind.items()):
            out.append(
                f"    {kind:20} " + ", ".join(f"{s}: {n:,}" for s, n in sorted(counts.items()))
            )
        out.append(f"  dead letters by kind and reason ({sum(self.dead_letters.values()):,}):")
        for reason, count in self.dead_letters.most_common(40):
            out.append(f"    {count:>8,}  {reason}")
        for failure in self.other_5xx[:10]:
            out.append(f"  5xx: {failure}")
        return out

    @property
    def passed(self) -> bool:
        return (
            not self.other_5xx
            and self.edge_alive
            and self.worker_restarts == 0
            and not self.stalled_partitions
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "bodies": self.bodies,
            "seconds": self.seconds,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "by_kind": {k: {str(s): n for s, n in v.items()} for k, v in self.by_kind.items()},
            "saturated_503": self.saturated_503,
            "other_5xx": self.other_5xx,
            "connection_failures": self.connection_failures,
            "stalled_408": self.stalled_408,
            "poison_records": self.poison_records,
            "worker_restarts": self.worker_restarts,
            "edge_alive": self.edge_alive,
            "edge_peak_rss_mb": self.edge_peak_rss_mb,
            "dead_letters": dict(self.dead_letters),
            "stalled_partitions": self.stalled_partitions,
            "passed": self.passed,
        }


def run_hostile(
    settings: Settings,
    *,
    bodies: int,
    clients: int,
    poison_records: int = 2_000,
    json_out: Path | None = None,
    say: Say = print,
) -> int:
    """Run the campaign (see the module doc); 0 when nothing failed."""
    bootstrap = local_bootstrap(settings, say=say)
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    campaign = Campaign()
    with tempfile.TemporaryDirectory(prefix="pipeline-hostile-") as work:
        work_dir = Path(work)
        database = f"hostile_{name[8:]}"
        with bench_clickhouse(settings, work_dir, say) as (store_url, _pid):
            env = worker_env(
                bootstrap=bootstrap,
                name=name,
                store_url=store_url,
                state_dir=work_dir / "state",
                rules_dir=settings.rules_dir.resolve(),
                extra={"PIPELINE_CLICKHOUSE_DATABASE": database},
            )
            edge_env = {
                **env,
                "PIPELINE_INGEST_PORT": str(free_ports(1)[0]),
                "PIPELINE_INGEST_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            }
            started = time.perf_counter()
            edge = _start(["ingest", "--log-level", "WARNING"], edge_env, work_dir / "edge.log")
            watch = _Supervisor(
                start_worker(env, work_dir / "worker.log"), env, work_dir / "worker.log", say
            )
            try:
                url = f"http://127.0.0.1:{edge_env['PIPELINE_INGEST_PORT']}/v1/ingest"
                _wait_ready(url.replace("/v1/ingest", "/readyz"), edge, work_dir / "edge.log")
                say(f"Edge {url} (pid {edge.pid}), worker pid {watch.process.pid}, topics {name}.*")
                asyncio.run(
                    _attack(
                        url, bootstrap, name, campaign, bodies, clients, poison_records, watch, say
                    )
                )
                campaign.edge_alive = edge.poll() is None
                campaign.edge_peak_rss_mb = peak_rss_mb(edge.pid)
                say("Waiting for the worker to commit every record")
                campaign.stalled_partitions = _drain(bootstrap, name, watch, say)
                campaign.worker_restarts = watch.restarts
                campaign.dead_letters = asyncio.run(dead_letters(bootstrap, f"{name}.dlq"))
            finally:
                stop_worker(watch.process)
                stop_worker(edge)
                drop_database(store_url, database)
            campaign.seconds = time.perf_counter() - started
    for line in campaign.lines():
        say(line)
    say(f"Campaign {'passed' if campaign.passed else 'FAILED'}")
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(campaign.to_json_dict(), option=orjson.OPT_INDENT_2))
        say(f"JSON written to {json_out}")
    return 0 if campaign.passed else 1


class _Supervisor:
    """The worker process, started again (and counted) whenever it exits."""

    def __init__(
        self, process: subprocess.Popen[bytes], env: dict[str, str], log: Path, say: Say
    ) -> None:
        self.process = process
        self.env = env
        self.log = log
        self.say = say
        self.restarts = 0

    def check(self) -> None:
        code = self.process.poll()
        if code is not None:
            self.restarts += 1
            self.say(f"  worker exited with {code}; restarted (see {self.log})")
            self.process = start_worker(self.env, self.log)


async def _attack(
    url: str,
    bootstrap: str,
    name: str,
    campaign: Campaign,
    bodies: int,
    clients: int,
    poison_records: int,
    watch: _Supervisor,
    say: Say,
) -> None:
    target = HttpTarget.from_url(url)
    source = HostileBodies(7, max_events=10_000, run=name)
    remaining = [bodies]
    started = time.perf_counter()

    async def client() -> None:
        connection = KeepAliveConnection(target, timeout_s=120)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                attack = source.next()
                status, answer = await connection.exchange(_request(target, attack))
                campaign.note(attack.kind, status, answer)
                if campaign.bodies % 10_000 == 0:
                    rate = campaign.bodies / (time.perf_counter() - started)
                    say(f"  {campaign.bodies:,}/{bodies:,} bodies ({rate:,.0f}/s)")
                    watch.check()
        finally:
            await connection.close()

    async def burst() -> None:
        await asyncio.sleep(2.0)
        valid = HostileBodies(11, max_events=10_000, run=f"{name}-burst")

        async def one() -> None:
            connection = KeepAliveConnection(target, timeout_s=120)
            try:
                for _ in range(10):
                    attack = valid._valid()
                    status, answer = await connection.exchange(_request(target, attack))
                    campaign.note("saturation_burst", status, answer)
            finally:
                await connection.close()

        await asyncio.gather(*(one() for _ in range(SATURATION_CLIENTS)))

    await asyncio.gather(
        *(client() for _ in range(clients)),
        burst(),
        _stalled_uploads(target, campaign),
        _poison_past_the_edge(bootstrap, f"{name}.events", poison_records, name, campaign),
    )


async def _poison_past_the_edge(
    bootstrap: str, topic: str, count: int, run: str, campaign: Campaign
) -> None:
    campaign.poison_records = await poison(bootstrap, topic, count, run)


def _request(target: HttpTarget, attack: Attack) -> bytes:
    headers = {"Content-Type": "application/json"}
    if attack.key is not None:
        headers["Authorization"] = f"Bearer {attack.key}"
    if attack.encoding is not None:
        headers["Content-Encoding"] = attack.encoding
    return post_request(target, attack.body, headers)


async def _stalled_uploads(target: HttpTarget, campaign: Campaign) -> None:
    async def stall() -> None:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        try:
            head = (
                f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"
                "Authorization: Bearer dev-kong-prod-key\r\nContent-Length: 100000\r\n\r\n"
            )
            writer.write(head.encode() + b"[{")  # then nothing: a stalled upload
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout=60)
            if answer.startswith(b"HTTP/1.1 408"):
                campaign.stalled_408 += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    await asyncio.sleep(1.0)
    await asyncio.gather(*(stall() for _ in range(STALLED_UPLOADS)))


def _drain(bootstrap: str, name: str, watch: _Supervisor, say: Say) -> dict[int, int]:
    """Wait until the group committed every record; the partitions still behind, if any."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    topic = f"{name}.events"
    while time.monotonic() < deadline:
        watch.check()
        if asyncio.run(group_lag(bootstrap, name, topic)) == 0:
            return {}
        time.sleep(1.0)
    return asyncio.run(lag_by_partition(bootstrap, name, topic))


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(url: str, edge: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if edge.poll() is not None:
            raise InfrastructureError(
                f"the edge exited with {edge.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise InfrastructureError(f"the edge was not ready within {timeout_s:.0f} s; see {log}")


__all__ = ["Campaign", "run_hostile"]
