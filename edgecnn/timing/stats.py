"""Summary statistics of latency samples, with units in every field name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one call (one batch), in milliseconds, over `iters` timed calls."""

    iters: int
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_std: float

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> LatencyStats:
        if len(samples) == 0:
            raise EdgeCNNError("no timed runs to summarize (was the benchmark interrupted early?)")
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        # Linear interpolation between order statistics (numpy's default, as trtexec does).
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(iters=len(ms), latency_ms_mean=float(ms.mean()), latency_ms_p50=float(p50),
                   latency_ms_p90=float(p90), latency_ms_p99=float(p99),
                   latency_ms_min=float(ms.min()), latency_ms_max=float(ms.max()),
                   latency_ms_std=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0)

    def throughput_ips(self, batch: int) -> float:
        """Images per second at this batch size, from the mean latency."""
        return batch * 1e3 / self.latency_ms_mean

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# A record whose noise band is wider than this is marked noisy: the same limit `edgecnn tune`
# applies to the same file timed twice (TuneSpec.max_noise).
NOISE_LIMIT = 0.05


def noise_band(samples: Sequence[float]) -> float | None:
    """How far the same case timed twice disagrees: the relative difference between the
    medians of the first and second half of its samples (in time order, so across the
    interleaved rounds). None with fewer than 8 samples."""
    if len(samples) < 8:
        return None
    half = len(samples) // 2
    a, b = float(np.median(samples[:half])), float(np.median(samples[half:]))
    return abs(a - b) / min(a, b) if min(a, b) > 0 else None
