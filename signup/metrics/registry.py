"""The registry a scrape renders: this process's metrics, or every process's in multiprocess mode.

prometheus-client picks multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set in the
environment before it is imported; then each process writes its metrics to files there and
a scrape merges them all (gunicorn workers, Celery pool processes). Unset, the default
in-process registry is served, so `signup serve --demo` needs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR when set (multiprocess mode), else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _ProcessMetrics(Collector):
    """Everything in prometheus-client's default registry, as one collector."""

    def collect(self) -> Iterator[Metric]:
        """Yield the default registry's metrics (this process's only)."""
        return iter(REGISTRY.collect())


def build(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics plus `extra` (e.g. database gauges)."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ProcessMetrics())
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of a registry."""
    return generate_latest(registry)


def prepare() -> None:
    """Create PROMETHEUS_MULTIPROC_DIR when set but missing; emptying it is the launcher's job."""
    path = multiprocess_dir()
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
