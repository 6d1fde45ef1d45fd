"""The Prometheus fixture scrapes a real exporter, and promtool lints what it scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import prometheus_client
import pytest

from hydrafed.ports import free_port
from tests.fixtures.prometheus import Prometheus, PrometheusError, check_metrics, prometheus, scrape

__all__ = ["prometheus"]

pytestmark = pytest.mark.integration


@pytest.fixture
def exporter() -> Iterator[tuple[str, prometheus_client.CollectorRegistry]]:
    """A prometheus-client HTTP exporter on a free loopback port with its own registry."""
    registry = prometheus_client.CollectorRegistry()
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}", registry
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_scraped_series_has_the_exported_value(
    prometheus: Callable[..., Prometheus], exporter: tuple[str, prometheus_client.CollectorRegistry]
) -> None:
    # Prepare
    target, registry = exporter
    rounds = prometheus_client.Counter(
        "hydrafed_rounds", "Rounds a party finished.", ["party"], registry=registry
    )
    rounds.labels(party="alice").inc(3)

    # Execute
    server = prometheus([target])
    (sample,) = server.wait_for_series('hydrafed_rounds_total{party="alice"}')
    rounds.labels(party="alice").inc(2)
    server.wait_for_series(
        'hydrafed_rounds_total{party="alice"}', predicate=lambda r: bool(r) and r[0]["value"][1] == "5"
    )

    # Assert
    assert sample["value"][1] == "3"
    assert sample["metric"] == {
        "__name__": "hydrafed_rounds_total",
        "party": "alice",
        "job": "test",
        "instance": target,
    }
    assert server.query(f'up{{instance="{target}"}}')[0]["value"][1] == "1"


def test_stop_leaves_nothing_running(exporter: tuple[str, prometheus_client.CollectorRegistry]) -> None:
    # Prepare
    server = Prometheus.start([exporter[0]])
    workdir = server.workdir

    # Execute
    server.stop()

    # Assert
    assert not server.running()
    assert not workdir.exists()
    with pytest.raises(OSError):
        scrape(f"{server.url}/-/ready", timeout=2)


def test_promtool_accepts_the_exporter_and_names_a_bad_metric(
    exporter: tuple[str, prometheus_client.CollectorRegistry],
) -> None:
    # Prepare
    target, registry = exporter
    prometheus_client.Gauge("hydrafed_party_loss", "Last local loss.", registry=registry).set(0.25)

    # Execute
    good = check_metrics(scrape(f"http://{target}/metrics"))
    bad = check_metrics("# HELP rounds Rounds.\n# TYPE rounds counter\nrounds 1\n")
    broken = check_metrics("not a metric line{{\n")

    # Assert
    assert good.ok, good.output
    assert not bad.ok and bad.returncode == 3
    assert bad.problems == ['rounds counter metrics should have "_total" suffix']
    assert broken.returncode == 1 and "parsing error" in broken.output


def test_a_bad_query_names_the_error(
    prometheus: Callable[..., Prometheus], exporter: tuple[str, prometheus_client.CollectorRegistry]
) -> None:
    # Prepare
    server = prometheus([exporter[0]])

    # Execute / Assert
    with pytest.raises(PrometheusError, match="bad_data"):
        server.query("sum(")
