"""One BLAS thread for the numeric steps.

The steps solve many small systems (a 156 × 72 SVD, batches of 12 × 12 normal equations): with
OpenBLAS's default of one thread per core, every call pays thread start-up and, on a shared machine,
waits for busy cores — one SVD took 138 ms with the default threads and 5.3 ms with one under load.
Parallelism belongs a level up (Dagster's multiprocess executor, one process per step or market),
where it does not multiply with BLAS's own threads. `CMMM_BLAS_THREADS` overrides the limit
(0: leave the libraries' defaults, for measuring the difference: benchmarks/refresh_speed.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

BLAS_THREADS_ENV = "CMMM_BLAS_THREADS"
DEFAULT_BLAS_THREADS = 1


def blas_thread_limit() -> int | None:
    """The BLAS thread limit the numeric steps run under; None leaves the libraries' defaults."""
    text = os.environ.get(BLAS_THREADS_ENV, "").strip()
    if not text:
        return DEFAULT_BLAS_THREADS
    try:
        limit = int(text)
    except ValueError:
        return DEFAULT_BLAS_THREADS
    return limit if limit > 0 else None


@contextmanager
def numeric_step() -> Iterator[None]:
    """Run the body (and, used as a decorator, each call) with BLAS capped to `blas_thread_limit()`
    threads; the previous limits are restored on exit."""
    limit = blas_thread_limit()
    if limit is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=limit, user_api="blas"):
        yield
