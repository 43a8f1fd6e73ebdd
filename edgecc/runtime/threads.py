"""The TVM runtime's CPU thread pool: how many threads the kernels of this process run on.

TVM sizes a thread's pool when the thread first runs a parallel kernel: from `TVM_NUM_THREADS`,
else from `hardware_concurrency() / 2` on x86-64 (it assumes two hyper-threads per core), so a
host with one thread per core would run on half its cores. edgecc runs on every core this process
may use (`os.sched_getaffinity`) unless told a number: `use_threads(n)` configures the calling
thread's pool (`runtime.config_threadpool`) after making sure the pool is created large enough.
"""

from __future__ import annotations

import os

from edgecc.errors import InputError

__all__ = ["available_cores", "reserve_threads", "use_threads", "pool_threads"]

#: TVM's affinity mode "every worker may run on any of the given cores"
_SHARE_ALL_CORES = -3


def available_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def reserve_threads(count: int | None = None) -> None:
    """Size pools created from now on for at least `count` threads (default: every available core).

    Only `TVM_NUM_THREADS` is set, and only when the user has not set it: TVM reads it when a
    thread's pool is created, so this must run before the first kernel of that thread.
    """
    os.environ.setdefault("TVM_NUM_THREADS", str(max(count or 0, len(available_cores()))))


def use_threads(count: int | None = None) -> int:
    """Run the calling thread's kernels on `count` threads (None: every available core).

    Returns the number of threads the pool now uses: fewer than asked when the pool was created
    smaller before (`TVM_NUM_THREADS` set lower, or kernels run before edgecc sized it).
    """
    import tvm

    if count is not None and count < 1:
        raise InputError(f"the number of threads must be at least 1, got {count}")
    cores = available_cores()
    count = count or len(cores)
    reserve_threads(count)
    # TVM creates the pool with one worker per listed core: list them round-robin up to `count`
    listed = [cores[i % len(cores)] for i in range(max(count, len(cores)))]
    configure = tvm.get_global_func("runtime.config_threadpool")
    configure(_SHARE_ALL_CORES, count, [str(c) for c in listed])
    return pool_threads()


def pool_threads() -> int:
    """The number of threads the calling thread's pool runs kernels on."""
    import tvm

    return int(tvm.runtime.num_threads())
