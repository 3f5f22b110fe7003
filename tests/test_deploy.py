"""The container files cannot be run here (no Docker engine), so what they promise is checked
by reading them: no fixed secret, nothing published beyond loopback, no development keys in the
image."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_compose_has_no_fixed_password_and_publishes_only_the_edge_on_loopback() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"] == (
        "${CLICKHOUSE_PASSWORD:?set CLICKHOUSE_PASSWORD}"
    )
    assert "${CLICKHOUSE_PASSWORD:?" in compose["x-pipeline-env"]["PIPELINE_CLICKHOUSE_URL"]
    published = {name: svc.get("ports", []) for name, svc in services.items() if svc.get("ports")}
    assert published == {"ingest": ["127.0.0.1:8080:8080"]}
    assert ":pipeline@" not in text  # the former fixed password


def test_the_image_ships_no_rules_and_so_no_development_keys() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY rating_rules" not in dockerfile
    assert "PIPELINE_RULES_DIR=/etc/pipeline/rules" in dockerfile
