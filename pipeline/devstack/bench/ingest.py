"""Ingest edge benchmark: concurrent plugins posting lz4 batches to a real edge and broker.

The edge runs in its own process(es) (``edge_processes``; several share the port through
``SO_REUSEPORT``), or in the bench's process with ``in_process=True`` (quick checks only: the
clients then compete with the edge for the same core). ``clients`` concurrent posters, each
on one keep-alive connection of the bench's own minimal HTTP/1.1 client
(:mod:`pipeline.devstack.bench.http_client`: the load generator's CPU shares the machine with
the edge, so it must be light, as ``wrk`` is), post pre-built batches of ``batch_size``
events: realistic native payloads of every gateway in the catalog (the API ids and tenants its
rules know), one integration per batch, as that gateway's plugin would send them,
lz4-compressed. Bodies and whole requests are built before the clock starts.

Reported: accepted events/s, per-batch latency p50/p99/max as the client saw it, the edge's
time per stage (read / decode / publish, from its metrics), the peak resident memory of each
edge process (its own ``VmHWM``, read by the process itself just before it exits) and, with
``profile=True``, a CPU split and the top functions of the (first) edge process by own time
(cProfile). ``progress`` is called with the events accepted so far after every measured batch.

The bench writes to its own topics (``bench-ingest-<run>.*``, deleted afterwards unless
``keep_topics``), never to the pipeline's, and authenticates with the catalog's development
keys (``dev-<integration id>-key``, see rating_rules/README.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import cProfile
import io
import pickle
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.catalog import Catalog, load_catalog
from pipeline.devstack.bench import Plugin, build_bodies, dev_plugins
from pipeline.devstack.bench.host import peak_rss_mb
from pipeline.devstack.bench.http_client import HttpTarget, KeepAliveConnection, post_request
from pipeline.devstack.bench.topics import delete_topics
from pipeline.errors import ConfigError, InfrastructureError
from pipeline.ingest.metrics import IngestMetrics
from pipeline.ingest.server import create_edge
from pipeline.logs import configure_logging
from pipeline.runtime import tune_gc_for_throughput
from pipeline.settings import Settings, TopicNames

EDGE_ANSWER_TIMEOUT_S = 120.0
Progress = Callable[[int], None]
# Where an edge's CPU goes: (label, file suffix, function), cumulative time in the profile.
PROFILE_PARTS = (
    ("body (decompress + JSON)", "ingest/body.py", "decode_body"),
    ("gateway decoders", "decoders/__init__.py", "decode_items"),
    ("encode_event", "events/codec.py", "encode_event"),
    ("producer send", "ingest/publisher.py", "_send_all"),
)


@dataclass(frozen=True)
class BenchPlan:
    clients: int
    batches: int
    batch_size: int
    warmup_batches: int
    edge_processes: int
    in_process: bool
    profile: bool


@dataclass(frozen=True)
class IngestBenchResult:
    """What one bench run measured (latencies in ms, as the clients saw them)."""

    plan: BenchPlan
    events_accepted: int
    failed_batches: int
    duration_s: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    stage_ms: dict[str, float] = field(default_factory=dict)
    """Mean edge time per batch in each stage (read, decode, publish)."""
    profile: list[str] = field(default_factory=list)
    """CPU split, then the top functions by own time of the first edge process (if profiled)."""
    edge_peak_rss_mb: list[float] = field(default_factory=list)
    """Peak resident memory of each edge process, MiB (empty for an in-process edge)."""
    edge_cpu_s: list[tuple[float, float]] = field(default_factory=list)
    """CPU seconds of each edge process while measured: (whole process, event-loop thread)."""

    @property
    def events_sent(self) -> int:
        return self.plan.batches * self.plan.batch_size

    def summary(self) -> str:
        p = self.plan
        mode = "in-process edge" if p.in_process else f"{p.edge_processes} edge process(es)"
        lines = [
            f"ingest bench: {p.batches} batches x {p.batch_size} events, {p.clients} clients, "
            f"{mode}",
            f"  accepted {self.events_accepted}/{self.events_sent} events in "
            f"{self.duration_s:.2f} s = {self.events_per_s:,.0f} events/s "
            f"({self.failed_batches} batches not accepted)",
            f"  latency per batch: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"max {self.max_ms:.1f} ms",
        ]
        if self.stage_ms:
            split = ", ".join(f"{stage} {ms:.2f} ms" for stage, ms in self.stage_ms.items())
            lines.append(f"  edge time per batch: {split}")
        if self.edge_cpu_s and self.events_accepted:
            process = sum(cpu for cpu, _ in self.edge_cpu_s)
            loop = sum(cpu for _, cpu in self.edge_cpu_s)
            lines.append(
                f"  edge CPU per accepted event: {1e6 * process / self.events_accepted:.1f} µs "
                f"(event-loop thread {1e6 * loop / self.events_accepted:.1f} µs)"
            )
        if self.edge_peak_rss_mb:
            peaks = ", ".join(f"{mb:.0f}" for mb in self.edge_peak_rss_mb)
            lines.append(f"  peak RSS per edge process: {peaks} MiB")
        if self.profile:
            lines.append("  edge profile (top functions by own time):")
            lines.extend(f"    {line}" for line in self.profile)
        return "\n".join(lines)


def run_ingest_bench(
    settings: Settings,
    bootstrap: str,
    *,
    clients: int = 8,
    batches: int = 1000,
    batch_size: int = 100,
    warmup_batches: int = 50,
    edge_processes: int = 1,
    in_process: bool = False,
    profile: bool = False,
    keep_topics: bool = False,
    seed: int = 7,
    progress: Progress | None = None,
) -> IngestBenchResult:
    """Run the bench (blocking) and return its measurements; see the module doc."""
    if min(clients, batches, batch_size, edge_processes) < 1 or warmup_batches < 0:
        raise ConfigError("bench sizes must be positive", clients=clients, batches=batches)
    plan = BenchPlan(
        clients, batches, batch_size, warmup_batches, edge_processes, in_process, profile
    )
    run = uuid.uuid4().hex[:8]
    topics = TopicNames(
        events=f"bench-ingest-{run}.events",
        dead_letters=f"bench-ingest-{run}.dead-letters",
        quarantine=f"bench-ingest-{run}.quarantine",
    )
    bench_settings = settings.model_copy(
        update={"topics": topics, "ingest_host": "127.0.0.1", "ingest_port": 0}
    )
    catalog = load_catalog(settings.rules_dir)
    plugins = dev_plugins(catalog)
    bodies = build_bodies(catalog, plugins, warmup_batches + batches, batch_size, run, seed)
    try:
        return asyncio.run(_bench(plan, bench_settings, catalog, bootstrap, bodies, progress))
    finally:
        if not keep_topics:
            names = (topics.events, topics.dead_letters, topics.quarantine)
            asyncio.run(delete_topics(bootstrap, names=names))


# --- running -------------------------------------------------------------------------------------
async def _bench(
    plan: BenchPlan,
    settings: Settings,
    catalog: Catalog,
    bootstrap: str,
    bodies: list[tuple[Plugin, bytes]],
    progress: Progress | None = None,
) -> IngestBenchResult:
    warmup, measured = bodies[: plan.warmup_batches], bodies[plan.warmup_batches :]
    edges: _StageClock | _EdgeProcesses
    async with contextlib.AsyncExitStack() as stack:
        if plan.in_process:
            edge = await create_edge(settings, catalog, bootstrap)
            stack.push_async_callback(edge.close)
            url, edges = edge.ingest_url, _StageClock(edge.metrics)
        else:
            edges = _EdgeProcesses()
            stack.push_async_callback(edges.stop)
            url = await edges.start(settings, bootstrap, plan.edge_processes, plan.profile)
        target = HttpTarget.from_url(url)
        warmup_requests, measured_requests = _requests(target, warmup), _requests(target, measured)
        connections = [KeepAliveConnection(target) for _ in range(plan.clients)]
        for connection in connections:
            stack.push_async_callback(connection.close)
        await _drive(connections, warmup_requests)
        await edges.reset()
        started = time.perf_counter()
        outcomes = await _drive(connections, measured_requests, progress)
        duration = time.perf_counter() - started
    latencies = sorted(ms for ms, _, _ in outcomes)
    accepted = sum(n for _, status, n in outcomes if status == 202)
    return IngestBenchResult(
        plan=plan,
        events_accepted=accepted,
        failed_batches=sum(1 for _, status, _ in outcomes if status != 202),
        duration_s=duration,
        events_per_s=accepted / duration if duration > 0 else 0.0,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else 0.0,
        stage_ms=edges.stage_ms(),
        profile=edges.profile if isinstance(edges, _EdgeProcesses) else [],
        edge_peak_rss_mb=edges.peak_rss_mb if isinstance(edges, _EdgeProcesses) else [],
        edge_cpu_s=edges.cpu_s if isinstance(edges, _EdgeProcesses) else [],
    )


def _requests(target: HttpTarget, bodies: list[tuple[Plugin, bytes]]) -> list[bytes]:
    """Each body as the whole request its plugin would send (built once, before the clock)."""
    common = {"Content-Encoding": "lz4", "Content-Type": "application/json"}
    auth = "Authorization"
    return [post_request(target, body, {auth: f"Bearer {p.key}", **common}) for p, body in bodies]


async def _drive(
    connections: list[KeepAliveConnection],
    requests: list[bytes],
    progress: Progress | None = None,
) -> list[tuple[float, int, int]]:
    """Send every request, one poster per connection: (latency ms, status, accepted) each.

    Status 0: no HTTP answer (connection refused or dropped); the poster's next request opens
    a new connection. The latency runs from the request's write to its whole answer read.
    """
    queue = iter(requests)
    outcomes: list[tuple[float, int, int]] = []
    accepted_so_far = 0

    async def poster(connection: KeepAliveConnection) -> None:
        nonlocal accepted_so_far
        for request in queue:
            started = time.perf_counter()
            status, body = await connection.exchange(request)
            latency_ms = (time.perf_counter() - started) * 1000
            accepted = int(orjson.loads(body)["accepted"]) if status == 202 else 0
            outcomes.append((latency_ms, status, accepted))
            accepted_so_far += accepted
            if progress is not None:
                progress(accepted_so_far)

    await asyncio.gather(*(poster(connection) for connection in connections))
    return outcomes


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


class _StageClock:
    """Mean stage times of one edge since the last :meth:`reset` (the warm-up is left out)."""

    def __init__(self, metrics: IngestMetrics) -> None:
        self.metrics = metrics
        self.baseline: dict[str, tuple[float, float]] = {}

    async def reset(self) -> None:
        self.baseline = self.metrics.stage_totals()

    def stage_ms(self) -> dict[str, float]:
        means = {}
        for stage, (total, count) in self.metrics.stage_totals().items():
            base_total, base_count = self.baseline.get(stage, (0.0, 0.0))
            if count > base_count:
                means[stage] = 1000 * (total - base_total) / (count - base_count)
        return means


class _EdgeProcesses:
    """Edge subprocesses driven over stdin/stdout (one JSON line per answer)."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        self.stages: dict[str, list[float]] = {}
        self.profile: list[str] = []
        self.peak_rss_mb: list[float] = []
        self.cpu_s: list[tuple[float, float]] = []

    async def start(self, settings: Settings, bootstrap: str, count: int, profile: bool) -> str:
        port = 0
        for number in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                f"from {__name__} import edge_process_main; edge_process_main()",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self.processes.append(process)
            spec = {
                "settings": base64.b64encode(pickle.dumps(settings)).decode(),
                "bootstrap": bootstrap,
                "port": port,
                "reuse_port": count > 1,
                "profile": profile and number == 0,
            }
            await _tell(process, orjson.dumps(spec).decode())
            port = int((await _hear(process))["port"])
        return f"http://127.0.0.1:{port}/v1/ingest"

    async def reset(self) -> None:
        for process in self.processes:
            await _tell(process, "reset")
        for process in self.processes:
            await _hear(process)

    async def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                await _tell(process, "stop")
                report = await _hear(process)
                for stage, ms in report["stage_ms"].items():
                    self.stages.setdefault(stage, []).append(ms)
                self.profile = self.profile or report["profile"]
                self.peak_rss_mb.append(float(report["peak_rss_mb"]))
                self.cpu_s.append((float(report["cpu_s"]), float(report["loop_cpu_s"])))
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    def stage_ms(self) -> dict[str, float]:
        return {stage: sum(ms) / len(ms) for stage, ms in self.stages.items()}


async def _tell(process: asyncio.subprocess.Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line.encode() + b"\n")
    await process.stdin.drain()


async def _hear(process: asyncio.subprocess.Process) -> Any:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), EDGE_ANSWER_TIMEOUT_S)
    if not line:
        raise InfrastructureError("a bench edge process exited early; see its stderr above")
    return orjson.loads(line)


def edge_process_main() -> None:
    """Entry point of a bench edge process (see :class:`_EdgeProcesses`).

    Reads its spec as one JSON line on stdin, answers ``{"port": n}``, then obeys ``reset``
    (restart the stage clock, start profiling) and ``stop`` (answer the report, with the
    process's peak resident memory so far, and exit).
    """
    configure_logging("WARNING")  # stderr; stdout carries the answers
    spec = orjson.loads(sys.stdin.readline())
    settings: Settings = pickle.loads(base64.b64decode(spec["settings"]))
    profiler = cProfile.Profile() if spec["profile"] else None
    asyncio.run(_edge_process(settings, spec, profiler))


def _answer(payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload).decode() + "\n")
    sys.stdout.flush()


async def _edge_process(
    settings: Settings, spec: dict[str, Any], profiler: cProfile.Profile | None
) -> None:
    catalog = load_catalog(settings.rules_dir)
    edge = await create_edge(
        settings, catalog, spec["bootstrap"], port=spec["port"], reuse_port=spec["reuse_port"]
    )
    _answer({"port": edge.port})
    tune_gc_for_throughput()  # as `python -m pipeline ingest` does once it is up
    clock = _StageClock(edge.metrics)
    cpu = loop_cpu = 0.0
    while (await asyncio.to_thread(sys.stdin.readline)).strip() == "reset":
        await clock.reset()
        cpu, loop_cpu = time.process_time(), time.thread_time()
        if profiler is not None:
            profiler.enable()
        _answer({"reset": True})
    if profiler is not None:
        profiler.disable()
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    await edge.close()
    _answer(
        {
            "stage_ms": clock.stage_ms(),
            "profile": top_functions(profiler) if profiler else [],
            "peak_rss_mb": peak_rss_mb() or 0.0,
            "cpu_s": cpu,
            "loop_cpu_s": loop_cpu,
        }
    )


def top_functions(profiler: cProfile.Profile, limit: int = 15) -> list[str]:
    """A one-line CPU split of the edge, then the ``limit`` functions with the most own time."""
    stats: dict[tuple[str, int, str], tuple[Any, ...]]
    stats = pstats.Stats(profiler, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1.0
    shares = {
        label: 100
        * sum(e[3] for (f, _, n), e in stats.items() if f.endswith(suffix) and n == fn)
        / total
        for label, suffix, fn in PROFILE_PARTS
    }
    split = ", ".join(f"{label} {share:.0f}%" for label, share in shares.items())
    rest = 100 - sum(shares.values())
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    return [f"CPU {total:.2f} s: {split}, rest (HTTP, asyncio, Kafka I/O) {rest:.0f}%"] + [
        f"{own:7.3f}s own {cum:7.3f}s cum {calls:>8} {name} "
        f"({'/'.join(filename.split('/')[-2:])}:{line})"
        for (filename, line, name), (_, calls, own, cum, _) in ranked
    ]
