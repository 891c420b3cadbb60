"""Blocks of numpy work in threads (alsys.strategies.parallel): results in order and the same as
one thread's, bit for bit, in every strategy step that uses them; the BLAS's thread count
respected; the memory of blocks waiting bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from alsys.strategies import Pool, make_strategy, parallel
from alsys.strategies.batchbald import batchbald_greedy, joint_entropy_with_candidates
from alsys.strategies.kmeans_steps import lloyd_numpy_runs, nearest_runs
from alsys.strategies.neighbours import knn_among, self_knn

T = TypeVar("T")


@pytest.fixture
def two_threads() -> Iterator[None]:
    """The BLAS (and so the blocks) on two threads, whatever the machine has."""
    with threadpool_limits(2, user_api="blas"):
        assert parallel.blas_threads() == 2
        yield


def one_thread_and_two(work: Callable[..., T], *args: Any) -> tuple[T, T]:
    """``work(*args)`` on a machine of one thread (the BLAS too), then with the blocks on two
    threads. Each block runs its BLAS calls on one thread either way, so the results match bit
    for bit. (MAX_THREADS = 1 with the BLAS on two, as benchmarks/threads.py times the code
    before the threads, can differ in the last bit: a GEMV over two BLAS threads rounds
    differently.)"""
    with threadpool_limits(1, user_api="blas"):
        alone = work(*args)
    return alone, work(*args)


def test_blocks_come_back_in_order_from_worker_threads(two_threads: None) -> None:
    names: set[str] = set()

    def work(i: int) -> int:
        names.add(threading.current_thread().name)
        assert parallel.blas_threads() == 1  # the BLAS is held to one thread inside
        return i * i

    assert parallel.map_blocks(work, range(40)) == [i * i for i in range(40)]
    assert names and all(name.startswith("alsys") for name in names)
    assert parallel.blas_threads() == 2  # and given back


def test_one_blas_thread_keeps_the_work_in_the_calling_thread() -> None:
    names: set[str] = set()
    with threadpool_limits(1, user_api="blas"):
        parallel.map_blocks(lambda i: names.add(threading.current_thread().name), range(8))
    assert names == {threading.current_thread().name}


def test_imap_blocks_never_has_more_blocks_running_than_threads(two_threads: None) -> None:
    lock = threading.Lock()
    running, most = 0, 0

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05 if i == 0 else 0.002)  # the first is slow: the others must wait for it
        with lock:
            running -= 1
        return i

    parallel._pool(8)  # an executor of 8 threads, as on a larger machine
    results = parallel.imap_blocks(work, range(30))
    assert next(results) == 0
    assert list(results) == list(range(1, 30))
    assert parallel.map_blocks(work, list(range(30))) == list(range(30))
    assert most == 2  # as many as the BLAS's threads, not the executor's


def test_threaded_knn_equals_one_thread_bit_for_bit(two_threads: None) -> None:
    rng = np.random.default_rng(3)
    for m, d, q in ((2400, 300, 29), (2400, 300, 21), (1500, 64, 29)):
        x = rng.standard_normal((m, d), dtype=np.float32)
        x[50:90] = x[7]  # duplicated rows: ties in every list
        for with_indices in (False, True):
            alone, threaded = one_thread_and_two(self_knn, x, q, with_indices)
            np.testing.assert_array_equal(alone[0], threaded[0])
            if with_indices:
                np.testing.assert_array_equal(alone[1], threaded[1])
        alone, threaded = one_thread_and_two(knn_among, x[:700], x, q)
        np.testing.assert_array_equal(alone[0], threaded[0])
        np.testing.assert_array_equal(alone[1], threaded[1])


def test_threaded_kmeans_steps_and_joint_entropy_equal_one_thread(two_threads: None) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9000, 32), dtype=np.float32)
    centres = rng.standard_normal((3, 20, 32), dtype=np.float32)
    alone, threaded = one_thread_and_two(nearest_runs, x, centres)
    np.testing.assert_array_equal(alone, threaded)
    alone, threaded = one_thread_and_two(lloyd_numpy_runs, x, centres, 4)
    for run_alone, run_threaded in zip(alone, threaded, strict=True):
        for a, b in zip(run_alone, run_threaded, strict=True):  # labels, centres, sums, sizes
            np.testing.assert_array_equal(a, b)

    probs = rng.dirichlet(np.full(10, 0.3), size=(20, 700))
    joint = rng.random((20, 3000))
    alone, threaded = one_thread_and_two(joint_entropy_with_candidates, joint, probs, True)
    np.testing.assert_array_equal(alone, threaded)
    alone, threaded = one_thread_and_two(
        lambda: batchbald_greedy(probs, 12, np.random.default_rng(0), 3000)
    )
    np.testing.assert_array_equal(alone[0], threaded[0])


def typiclust_picks(pool: Pool, mask: np.ndarray, budget: int) -> np.ndarray:
    return make_strategy("typiclust").select(pool, mask, budget, np.random.default_rng(0)).indices


def test_threaded_typiclust_picks_equal_one_thread(two_threads: None) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6000, 300), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pool = Pool(embeddings=x)
    mask = np.zeros(x.shape[0], dtype=bool)
    for budget in (3, 12):  # 3 clusters of about 2,000 (threaded blocks), then kept lists
        alone, threaded = one_thread_and_two(typiclust_picks, pool, mask, budget)
        np.testing.assert_array_equal(alone, threaded)
