"""The block-resampling schemes the pipeline's non-overlapping blocks were compared with.

Each is a `cmmm_pipeline.effects.bootstrap.Resampling`: pass one to `bootstrap(..., resampling=...)`
or to `politis_white_block_length`. None of them counts its blocks, so estimates resting on a
selected transform fall back to percentile intervals under them (Efron's smoothed error needs the
counts). `benchmarks/accuracy.py --bootstrap NAME` runs the accuracy study under any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from cmmm_pipeline.effects.bootstrap import NON_OVERLAPPING, Resamples, Resampling


def _fixed_length_blocks(n: int, block_length: int, samples: int, rng: np.random.Generator,
                         starts_below: int) -> Resamples:
    """Blocks of `block_length` weeks from starts uniform on [0, starts_below), wrapped at n."""
    blocks = -(-n // block_length)
    starts = rng.integers(0, starts_below, size=(samples, blocks))
    idx = (starts[:, :, None] + np.arange(block_length)[None, None, :]).reshape(samples, -1)[:, :n]
    return Resamples(idx % n)


@dataclass(frozen=True)
class MovingBlocks:
    """Blocks of fixed length, starts uniform over the n − l + 1 full blocks (Künsch 1989)."""

    variance_constant: ClassVar[float] = 4.0 / 3.0

    def __call__(self, n: int, block_length: int, samples: int, rng: np.random.Generator) -> Resamples:
        return _fixed_length_blocks(n, block_length, samples, rng, n - block_length + 1)


@dataclass(frozen=True)
class CircularBlocks:
    """Blocks of fixed length on the series wrapped into a circle: every week equally likely
    (Politis & Romano 1992)."""

    variance_constant: ClassVar[float] = 4.0 / 3.0

    def __call__(self, n: int, block_length: int, samples: int, rng: np.random.Generator) -> Resamples:
        return _fixed_length_blocks(n, block_length, samples, rng, n)


@dataclass(frozen=True)
class StationaryBlocks:
    """Blocks of geometric length with mean `block_length`, wrapped (Politis & Romano 1994)."""

    variance_constant: ClassVar[float] = 2.0

    def __call__(self, n: int, block_length: int, samples: int, rng: np.random.Generator) -> Resamples:
        new_block = rng.random((samples, n)) < 1.0 / block_length
        new_block[:, 0] = True
        starts = rng.integers(0, n, size=(samples, n))
        t = np.arange(n)
        block_start = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
        return Resamples((np.take_along_axis(starts, block_start, axis=1) + t - block_start) % n)


SCHEMES: dict[str, Resampling] = {
    "non_overlapping": NON_OVERLAPPING,
    "moving_block": MovingBlocks(),
    "circular_block": CircularBlocks(),
    "stationary": StationaryBlocks(),
}
"""Every scheme by its command-line name; the first is the pipeline's."""
