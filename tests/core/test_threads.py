"""The numeric steps run with one BLAS thread, and put the caller's limit back."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from cmmm_pipeline.core.threads import BLAS_THREADS_ENV, blas_thread_limit, numeric_step


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_numeric_step_runs_on_one_blas_thread_and_restores_the_callers_limit(monkeypatch) -> None:
    monkeypatch.delenv(BLAS_THREADS_ENV, raising=False)
    np.linalg.svd(np.ones((4, 3)))  # numpy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and all(n == 2 for n in before)

        @numeric_step()
        def inside() -> list[int]:
            return _blas_threads()

        assert inside() == [1] * len(before)
        assert inside() == [1] * len(before)  # a decorated function can run again (a fresh context per call)
        assert _blas_threads() == before


@pytest.mark.parametrize(("text", "limit"), [("", 1), ("3", 3), ("0", None), ("many", 1)])
def test_the_limit_can_be_overridden_from_the_environment(monkeypatch, text: str, limit: int | None) -> None:
    monkeypatch.setenv(BLAS_THREADS_ENV, text)
    assert blas_thread_limit() == limit


def test_limit_zero_leaves_the_libraries_threads(monkeypatch) -> None:
    monkeypatch.setenv(BLAS_THREADS_ENV, "0")
    with threadpool_limits(limits=2, user_api="blas"):
        with numeric_step():
            assert all(n == 2 for n in _blas_threads())
