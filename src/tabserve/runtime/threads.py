"""Per-worker thread limits, so that workers x threads <= cores on a small machine.

How many threads a worker may use is `Settings.intra_op_threads()` (the usable cores, a
container's CPU limit included, shared among the workers).

BLAS and OpenMP size their pools when first imported, so `limit_env` must run in a worker
before numpy or scikit-learn load; `limit_pools` caps pools already loaded (threadpoolctl).
ONNX Runtime takes its own `intra_op_num_threads` (see `runtime.onnx`).
"""

from __future__ import annotations

import os
from typing import Any

ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_env(threads: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """Set the BLAS/OpenMP thread variables to `threads` in `env` (default os.environ)."""
    target: Any = os.environ if env is None else env
    for name in ENV_VARS:
        target[name] = str(max(1, threads))
    return dict(target) if env is not None else {n: os.environ[n] for n in ENV_VARS}


def limit_pools(threads: int) -> Any:
    """Cap the BLAS/OpenMP pools loaded in this process; returns threadpoolctl's limiter."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, threads))
