"""The project's own launcher for a real, single-node Apache Kafka 4.x broker (KRaft).

One entry point for tests, CI and ``python -m pipeline dev``/``kafka start``:

1. **Resolve**: the broker jars come from Maven Central through ``kafka-pom.xml`` (shipped beside
   this module) and ``mvn dependency:copy-dependencies``, into
   ``<cache_dir>/kafka/libs-<version>``. A ``.complete`` marker makes later runs skip Maven.
2. **Start**: a KRaft controller+broker on free loopback ports, data under
   ``<cache_dir>/kafka/broker``; the process runs in its own session so it outlives the caller
   (tests and ``dev`` share one broker; topics isolate them).
3. **Ready**: waits until an idempotent ``acks=all`` producer is acknowledged, then prints the
   bootstrap address.
4. **Reuse**: ``broker.json`` records pid and ports; a live broker is reused instead of started.
5. **Stop**: SIGTERM to the broker's process group, SIGKILL after a grace period.

A file lock serialises concurrent starts from several processes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.devstack.local_processes import (
    free_ports,
    locked,
    port_free,
    port_open,
    runs_module,
    tail,
    terminate_group,
)
from pipeline.errors import BrokerLaunchError
from pipeline.settings import Settings

Say = Callable[[str], None]

HEALTH_TOPIC = "_pipeline_launcher_health"
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class BrokerInfo:
    """A running broker started by this launcher."""

    pid: int
    port: int
    controller_port: int
    version: str
    reused: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


def _quiet(_: str) -> None:
    return None


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id as Kafka makes one (``kafka-storage random-uuid``): 16 random bytes in
    URL-safe base64 without padding, drawn again when the text starts with ``-``. Kafka's own
    ``Uuid.randomUuid`` does the same: ``kafka-storage format --cluster-id -xyz`` reads the id
    as an option and fails (one launch in 64 did).
    """
    while True:
        text = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaLauncher:
    """Resolves, starts, reuses and stops the local broker. All paths derive from ``cache_dir``."""

    def __init__(self, cache_dir: Path, version: str, *, say: Say = _quiet) -> None:
        self.version = version
        self.home = cache_dir / "kafka"
        self.libs_dir = self.home / f"libs-{version}"
        self.run_dir = self.home / "broker"
        self.data_dir = self.run_dir / "data"
        self.state_file = self.run_dir / "broker.json"
        self.ports_file = self.run_dir / "ports.json"
        self.log_file = self.run_dir / "broker.log"
        self._say = say

    # ------------------------------------------------------------------ resolve
    def ensure_jars(self) -> Path:
        """Resolve the broker's jars once; later calls return the cached folder immediately."""
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerLaunchError(
                "Maven ('mvn') is not on PATH; it is needed once to fetch the Kafka broker jars "
                "from Maven Central (apt-get install maven), or set "
                "PIPELINE_KAFKA_BOOTSTRAP_SERVERS to use an existing broker",
            )
        self.home.mkdir(parents=True, exist_ok=True)
        staging = self.home / f".libs-{self.version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        pom = resources.files("pipeline.devstack").joinpath("kafka-pom.xml")
        with resources.as_file(pom) as pom_path:
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
                f"-Dkafka.version={self.version}",
            ]
            self._say(
                f"Resolving Apache Kafka {self.version} jars from Maven Central (first run only)"
            )
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not any(staging.glob(f"kafka_2.13-{self.version}.jar")):
            raise BrokerLaunchError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{self.version}: "
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}",
                version=self.version,
            )
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        staging.rename(self.libs_dir)
        marker.write_text(self.version)
        self._say(
            f"Cached {len(list(self.libs_dir.glob('*.jar')))} jars in {self.libs_dir} "
            f"({time.monotonic() - started:.0f} s)"
        )
        return self.libs_dir

    # ------------------------------------------------------------------ status
    def running(self) -> BrokerInfo | None:
        """The broker this launcher started, if its process is alive and its port answers."""
        try:
            state = json.loads(self.state_file.read_text())
            info = BrokerInfo(
                pid=int(state["pid"]),
                port=int(state["port"]),
                controller_port=int(state["controller_port"]),
                version=str(state["version"]),
                reused=True,
            )
        except (OSError, ValueError, KeyError):
            return None
        if not _is_our_broker(info.pid) or not port_open(info.port):
            return None
        return info

    # ------------------------------------------------------------------ start
    def start(self) -> BrokerInfo:
        """Return the running broker, or start one and wait until it acknowledges a produce."""
        with self._lock():
            existing = self.running()
            if existing is not None:
                if existing.version != self.version:
                    self._say(
                        f"Note: reusing running Kafka {existing.version} "
                        f"(settings ask for {self.version}; stop it to switch)"
                    )
                self._say(
                    f"Kafka already running at {existing.bootstrap_servers} (pid {existing.pid})"
                )
                return existing
            libs = self.ensure_jars()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            port, controller_port = self._pick_ports()
            props = self._write_config(port, controller_port)
            self._format_storage(libs, props)
            self._say(
                f"Starting Apache Kafka {self.version} (KRaft, single node) on 127.0.0.1:{port}"
            )
            started = time.monotonic()
            proc = self._spawn(libs, props)
            info = BrokerInfo(proc.pid, port, controller_port, self.version)
            self.state_file.write_text(
                json.dumps(
                    {
                        "pid": proc.pid,
                        "port": port,
                        "controller_port": controller_port,
                        "version": self.version,
                    }
                )
            )
            try:
                self._wait_ready(proc, info)
            except BaseException:
                self._terminate(proc.pid)
                self.state_file.unlink(missing_ok=True)
                raise
            self._say(
                f"Kafka ready at {info.bootstrap_servers} in {time.monotonic() - started:.1f} s "
                f"(pid {proc.pid}; log {self.log_file})"
            )
            return info

    def _pick_ports(self) -> tuple[int, int]:
        """Prefer the previous run's ports (stable address for users), else two free ones."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            old = json.loads(self.ports_file.read_text())
            port, cport = int(old["port"]), int(old["controller_port"])
            if port_free(port) and port_free(cport):
                return port, cport
        port, cport = free_ports(2)
        self.ports_file.write_text(json.dumps({"port": port, "controller_port": cport}))
        return port, cport

    def _write_config(self, port: int, controller_port: int) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.run_dir / "server.properties"
        # Static quorum (controller.quorum.voters) so that the controller port may change between
        # starts while the data directory is kept. Replication factors are 1: single node.
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=4",
                    # Topics are created explicitly; a typo must not create one.
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=8",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=720",
                    "",
                ]
            )
        )
        log4j = self.run_dir / "log4j2.properties"
        log4j.write_text(
            "\n".join(
                [
                    "status = error",
                    "appender.console.type = Console",
                    "appender.console.name = STDOUT",
                    "appender.console.layout.type = PatternLayout",
                    "appender.console.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = WARN",
                    "rootLogger.appenderRef.stdout.ref = STDOUT",
                    "logger.kafka.name = kafka.server.KafkaRaftServer",
                    "logger.kafka.level = INFO",
                    "",
                ]
            )
        )
        return props

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerLaunchError(
                "Java ('java') is not on PATH; Kafka 4.x needs Java 17 or newer"
            )
        return java

    def _format_storage(self, libs: Path, props: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        cmd = [
            self._java(),
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(props),
            "--cluster-id",
            cluster_id,
            "--ignore-formatted",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerLaunchError(
                f"Formatting the Kafka log directory {self.data_dir} failed: "
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}",
                data_dir=str(self.data_dir),
            )

    def _spawn(self, libs: Path, props: Path) -> subprocess.Popen[bytes]:
        cmd = [
            self._java(),
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(props),
        ]
        log = self.log_file.open("ab")
        try:
            return subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.run_dir,
            )
        finally:
            log.close()

    def _wait_ready(self, proc: subprocess.Popen[bytes], info: BrokerInfo) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = "not started"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerLaunchError(
                    f"The Kafka broker exited with code {proc.returncode} while starting; "
                    f"last log lines:\n{self.tail_log()}",
                    log=str(self.log_file),
                )
            if port_open(info.port):
                try:
                    with _quiet_aiokafka():
                        asyncio.run(_probe_produce(info.bootstrap_servers))
                    return
                except Exception as exc:  # the broker may still be electing its controller
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        raise BrokerLaunchError(
            f"Kafka did not acknowledge a produce within {READY_TIMEOUT_S:.0f} s ({last_error}); "
            f"last log lines:\n{self.tail_log()}",
            log=str(self.log_file),
        )

    def tail_log(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)

    # ------------------------------------------------------------------ stop
    def stop(self) -> bool:
        """Stop the broker this launcher started. Returns False when none was running."""
        with self._lock():
            info = self.running()
            if info is None:
                self.state_file.unlink(missing_ok=True)
                return False
            self._say(f"Stopping Kafka (pid {info.pid})")
            self._terminate(info.pid)
            self.state_file.unlink(missing_ok=True)
            return True

    def _terminate(self, pid: int) -> None:
        terminate_group(pid, STOP_GRACE_S)

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.home / "launcher.lock")


async def _probe_produce(bootstrap: str) -> None:
    """Create the health topic if needed, get one idempotent acks=all produce acknowledged, and
    commit a consumer-group offset: the broker creates its group coordinator (the offsets topic)
    on first use, and a client arriving before that gets GroupCoordinatorNotAvailable."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=5000,
    )
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(HEALTH_TOPIC, b"ping"), timeout=10)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id="_pipeline_launcher", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partition = TopicPartition(HEALTH_TOPIC, 0)
        consumer.assign([partition])
        await asyncio.wait_for(consumer.commit({partition: 1}), timeout=10)
    finally:
        await consumer.stop()


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every retry while a new broker elects its controller; the probe expects
    those failures and reports its own, so they are not shown."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_our_broker(pid: int) -> bool:
    return runs_module(pid, b"kafka.Kafka")


def local_bootstrap(settings: Settings, *, say: Say = _quiet) -> str:
    """For development tools (``dev``, ``bench``): the configured broker, else the local one
    (started or reused)."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    launcher = KafkaLauncher(settings.cache_dir, settings.kafka_version, say=say)
    return launcher.start().bootstrap_servers
