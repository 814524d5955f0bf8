"""Operations: Prometheus metrics and the ``/healthz``, ``/readyz``, ``/metrics`` endpoint.

This package owns what an operator watches. It must not drive calls or touch the ledger: the
drivers update ``RecorderMetrics`` and the composition root hands ``OpsServer`` a readiness probe.
"""

from __future__ import annotations

from asterisk_recorder.ops.http import OpsServer, ReadinessCheck, ReadinessReport
from asterisk_recorder.ops.metrics import Counter, Gauge, Histogram, RecorderMetrics, Registry

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "OpsServer",
    "ReadinessCheck",
    "ReadinessReport",
    "RecorderMetrics",
    "Registry",
]
