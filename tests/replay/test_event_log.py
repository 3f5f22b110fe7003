"""The event-log report against the engine, on realistic traffic from all five gateways.

The live stream ran with the example rules minus acme's alias ``acme_eu`` (so acme's events
sent under that header were quarantined as unknown_tenant); the report is asked with the
current rules, which have the alias: those events are attributed to acme, as quarantined.
Expected counts come from the independent reference (tests/support/reference.py).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.catalog import Catalog, load_catalog
from pipeline.devstack.traffic import canonical, sample_deliveries
from pipeline.events import encode_event
from pipeline.replay import EventLogReport, GatewayCounts, ReplayError, event_log_report
from pipeline.store import Store
from tests.replay.support import Call, Clock, LiveStream
from tests.support.builders import RULES_DIR, example_catalog
from tests.support.reference import reference_product, reference_tenant

Fresh = tuple[Store, str]


def catalog_without_acme_eu(directory: Path) -> Catalog:
    rules = directory / "rules"
    shutil.copytree(RULES_DIR, rules)
    tenants = rules / "tenants.yaml"
    text = tenants.read_text()
    assert "aliases: [ACME-LEGACY, acme_eu]" in text
    tenants.write_text(text.replace("aliases: [ACME-LEGACY, acme_eu]", "aliases: [ACME-LEGACY]"))
    return load_catalog(rules)


@dataclass
class Expected:
    accepted: int = 0
    billed: int = 0
    unmapped: int = 0
    duplicate: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)

    def as_counts(self, gateway: str) -> GatewayCounts:
        return GatewayCounts(
            gateway,
            self.accepted,
            self.billed,
            self.unmapped,
            self.duplicate,
            dict(self.quarantined),
        )


def expected_by_gateway(
    live: Catalog, events: list[tuple[dict[str, Any], int]], tenant: str, names: set[str]
) -> dict[str, GatewayCounts]:
    """Per gateway, from the reference: the tenant's resolved events by fate, and the
    quarantined ones whose raw header is one of ``names`` (casefolded)."""
    out: dict[str, Expected] = {}
    for event, copies in events:
        resolved, reason = reference_tenant(live, event)
        expected = out.setdefault(event["gateway"], Expected())
        if resolved == tenant:
            expected.accepted += copies
            expected.duplicate += copies - 1  # keys are distinct per call
            if reference_product(live, event) is None:
                expected.unmapped += 1
            else:
                expected.billed += 1
        elif resolved is None and any(
            h.strip().casefold() in names for h in event["tenant_headers"]
        ):
            expected.accepted += copies
            expected.quarantined[reason] += copies
    return {gw: e.as_counts(gw) for gw, e in sorted(out.items()) if e.accepted}


@pytest.fixture
def traffic(fresh_database: Fresh, tmp_path: Path) -> Iterator[tuple[Catalog, list[Any]]]:
    store, database = fresh_database
    live = catalog_without_acme_eu(tmp_path)
    deliveries = sample_deliveries(250, seed=11, quarantine_share=0.05)
    events = [(canonical(d), d.copies) for d in deliveries]
    stream = LiveStream(store, database, live, Clock())
    stream.deliver(
        [Call(encode_event(e), e.idempotency_key, copies) for e, copies in events], batch_size=40
    )
    yield live, [(e.model_dump(), copies) for e, copies in events]


@pytest.mark.integration
def test_counts_per_gateway_match_the_reference_and_add_up(
    fresh_database: Fresh, traffic: tuple[Catalog, list[Any]]
) -> None:
    store, database = fresh_database
    live, events = traffic
    current = example_catalog()

    report = event_log_report(store, database, current, "ACME-legacy")

    assert (report.tenant, report.known_tenant) == ("acme", True)
    assert report.names == ("acme", "ACME-LEGACY", "acme_eu")
    expected = expected_by_gateway(live, events, "acme", {"acme", "acme-legacy", "acme_eu"})
    assert {c.gateway: c for c in report.gateways} == expected
    assert len(report.gateways) == 5  # acme reports through every gateway
    assert report.total.quarantined_by_reason.get("unknown_tenant", 0) > 0  # the acme_eu ones
    for counts in (*report.gateways, report.total):
        assert counts.adds_up, counts
        assert counts.accepted == (
            counts.billed + counts.unmapped + counts.duplicate + counts.quarantined
        )
    assert report.total.duplicate > 0 and report.total.billed > 0

    # a sample of every fate, newest first, all of them acme's
    assert 0 < len(report.sample) <= 10
    assert {e.fate for e in report.sample} >= {"billed", "duplicate", "quarantined"}
    times = [e.event_time for e in report.sample]
    assert times == sorted(times, reverse=True)
    for event in report.sample:
        if event.fate == "quarantined":
            assert event.header is not None and event.header.strip().casefold() == "acme_eu"
            assert event.reason == "unknown_tenant"

    text = "\n".join(report.lines())
    assert "Event log of tenant acme (all periods, all gateways)" in text
    assert "quarantined on " in text and "unknown_tenant" in text
    assert "WARNING" not in text
    json = orjson.loads(orjson.dumps(report.to_json_dict()))
    assert json["total"]["accepted"] == report.total.accepted
    assert json["total"]["adds_up"] is True


@pytest.mark.integration
def test_gateway_and_period_filters(
    fresh_database: Fresh, traffic: tuple[Catalog, list[Any]]
) -> None:
    store, database = fresh_database
    current = example_catalog()
    everything = event_log_report(store, database, current, "acme", sample=0)

    kong = event_log_report(store, database, current, "acme", gateway="kong", period="2026-03")

    assert kong.gateways == (everything.counts_for("kong"),)
    assert {e.gateway for e in kong.sample} == {"kong"}
    assert everything.sample == ()
    april = event_log_report(store, database, current, "acme", period="2026-04")
    assert april.gateways == ()
    assert april.lines()[-1] == "No consumed events under this tenant."
    with pytest.raises(ReplayError, match="unknown gateway 'tyk'"):
        event_log_report(store, database, current, "acme", gateway="tyk")


@pytest.mark.integration
def test_a_header_value_no_tenant_has_shows_its_quarantined_events(
    fresh_database: Fresh, traffic: tuple[Catalog, list[Any]]
) -> None:
    store, database = fresh_database
    live, events = traffic
    report: EventLogReport = event_log_report(store, database, example_catalog(), "unknown-1")

    assert report.known_tenant is False
    assert {c.gateway: c for c in report.gateways} == expected_by_gateway(
        live, events, "unknown-1", {"unknown-1"}
    )
    assert report.total.quarantined == report.total.accepted > 0
    assert "not a tenant of the current rules" in report.lines()[0]
