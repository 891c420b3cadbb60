"""Independent blocks of numpy work spread over the threads the BLAS may use.

numpy's ufuncs (np.log, multiply) and its GEMMs release the GIL, so blocks of a memory-bound
computation can run in threads of this process. The threads take the BLAS's own thread count
(threadpoolctl reads it live: a Ray trial's CPU share, ``threadpool_limits(cpus)`` in
alsys.sweep.trainable, holds it), and the BLAS is held to one thread inside them, so the
strategies never run more threads than the BLAS alone would. (With the BLAS's own threads left
on, numpy work in a second thread right after a GEMM gained nothing on 2 cores: OpenBLAS's
workers spin for a while after each GEMM.) Each block is computed as it would be alone, so the
result does not depend on the number of threads.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
S = TypeVar("S")


@cache
def _blas() -> Any:
    import threadpoolctl

    return threadpoolctl.ThreadpoolController().select(user_api="blas")


# At most this many threads (None: as many as the BLAS may use). benchmarks/threads.py sets 1 to
# time the same code in one thread.
MAX_THREADS: int | None = None


def blas_threads() -> int:
    """The threads the loaded BLAS libraries may use now (the fewest of them, at least 1),
    capped by MAX_THREADS."""
    threads = min((lib.num_threads for lib in _blas().lib_controllers), default=1)
    return max(1, min(threads, MAX_THREADS or threads))


_executor: tuple[int, ThreadPoolExecutor] | None = None


def _pool(workers: int) -> ThreadPoolExecutor:
    """This process's executor, of at least ``workers`` and the CPU count's threads (a forked
    child makes its own). Its size does not bound the work: a caller never has more blocks
    submitted than the threads it may use."""
    global _executor
    pid = os.getpid()
    if _executor is None or _executor[0] != pid or _executor[1]._max_workers < workers:
        size = max(workers, os.cpu_count() or 1)
        _executor = (pid, ThreadPoolExecutor(max_workers=size, thread_name_prefix="alsys"))
    return _executor[1]


def imap_blocks(work: Callable[[S], T], blocks: Iterable[S]) -> Iterator[T]:
    """``work(b)`` for each of ``blocks``, yielded in order, computed by up to
    :func:`blas_threads` threads with the BLAS held to one thread each: at most that many
    blocks are submitted at a time, a new one as the oldest is taken, so the memory of blocks
    done but not yet taken stays bounded. In this thread, untouched, where one thread would do."""
    threads = blas_threads()
    if threads <= 1 or (isinstance(blocks, Sized) and len(blocks) <= 1):
        yield from map(work, blocks)
        return
    with _blas().limit(limits=1):  # the cached controller: 16 us, not threadpool_limits' 0.3 ms
        pool = _pool(threads)
        todo = iter(blocks)
        pending = deque(pool.submit(work, block) for block in islice(todo, threads))
        while pending:
            result = pending.popleft().result()
            for block in islice(todo, 1):
                pending.append(pool.submit(work, block))
            yield result


def map_blocks(work: Callable[[S], T], blocks: Sequence[S]) -> list[T]:
    """``[work(b) for b in blocks]``, in order, as :func:`imap_blocks` computes them."""
    return list(imap_blocks(work, blocks))
