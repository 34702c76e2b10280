"""Compiled (numba) ACE entropy: the histogram entropy of every step's point set, straight from the samples.

The numpy path (``fiper/scores/histogram.py``) sorts packed cell keys, ≈ 20 ns per point, the
same online and offline. These kernels bin each set of B points on its own grid exactly as
``grid_cells`` does (same float64 operations in the same order, so the same cell ids), then count
equal cells in O(B): in a dense array indexed by the packed key when the set's grid has at most
``DENSE_CELLS`` cells (the usual case), else in an open-addressing hash table on the d ids. The
entropy is ``-sum (c/B) log2(c/B)`` from the same table of terms; only the summation order
differs from the numpy path (agreement to 1e-12, tested).

One decision and a whole store run the same serial per-decision function, so online and offline
agree bit for bit. ``parallel=True`` (opt-in, ``ACE.parallel_offline``) spreads a store's decisions
over numba's threads with ``prange`` — the same function, the same values. It is off by default:
on the shared 2-core development machine it gained nothing while the other core was busy, and
with numba's default OpenMP threading layer the workers spinning after each parallel region
slowed the torch calls that follow (RND-OE offline 2 -> 47 µs per decision); with a free core and
``NUMBA_THREADING_LAYER=workqueue`` it halves the kernel's time.
``AVAILABLE`` is False when numba cannot be imported (or ``FIPER_ACE_KERNEL=numpy`` is set):
ACE then uses the numpy path for every call of the process, online and offline alike.
Compilation is cached on disk (``cache=True``); the first call in a fresh environment compiles
for a few seconds per input dtype.
"""

from __future__ import annotations

import os

import numpy as np

DENSE_CELLS = 1 << 14  # (< 2**31) count in a dense array when a set's grid has at most this many cells
PARALLEL_BLOCKS = 16  # blocks of decisions per numba thread offline
_HASH_CAP = float(1 << 62)  # cell ids at or above this are clamped for hashing only (equality stays exact)

try:
    if os.environ.get("FIPER_ACE_KERNEL", "").lower() == "numpy":
        raise ImportError("FIPER_ACE_KERNEL=numpy")
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
AVAILABLE = numba is not None

__all__ = ["AVAILABLE", "DENSE_CELLS", "store_entropy"]


if AVAILABLE:

    @njit(cache=True, nogil=True, inline="always")
    def _set_entropy(x, t, dims, integrate, width, margin, terms, dense_cap, p, lo, hi, cells, keys, counts, table, slot_count, used):
        """Entropy in bits of step t's B points of one decision x (B, H, A), binned on their own grid.

        p (d, B) receives the points (with ``integrate`` it holds step t - 1's and is cumulated, as
        ``np.cumsum`` does); the other arrays are scratch (counts and table are left zeroed).
        """
        b = x.shape[0]
        d = dims.shape[0]
        size = 1.0
        for k in range(d):  # gather (cumulate) the points with their min and max; origin and number of cells as grid_cells
            a = dims[k]
            pk = p[k]
            cumulate = integrate and t > 0
            low = np.inf
            high = -np.inf
            for j in range(b):
                v = pk[j] + np.float64(x[j, t, a]) if cumulate else np.float64(x[j, t, a])
                pk[j] = v
                if v < low:
                    low = v
                if v > high:
                    high = v
            origin = low - margin * (high - low)
            lo[k] = origin
            hi[k] = np.floor((high - origin) / width[k]) + 1.0
            size *= hi[k]
        ent = 0.0
        if size <= dense_cap:  # packed key < dense_cap: count in a dense array
            stride = np.int32(1)
            for k in range(d):  # one contiguous (vectorised) pass per dim
                pk = p[k]
                origin = lo[k]
                w = width[k]
                if k == 0:
                    for j in range(b):
                        keys[j] = np.int32(np.floor((pk[j] - origin) / w))
                else:
                    for j in range(b):
                        keys[j] += np.int32(np.floor((pk[j] - origin) / w)) * stride
                stride *= np.int32(hi[k])
            for j in range(b):
                counts[keys[j]] += 1
            for j in range(b):  # a cell's first point adds its term and zeroes it; the others add terms[0] = 0
                key = keys[j]
                ent += terms[counts[key]]
                counts[key] = 0
            return ent
        # open addressing on the d ids (any magnitude): table holds 1 + a representative point
        for k in range(d):
            for j in range(b):
                cells[k, j] = np.floor((p[k, j] - lo[k]) / width[k])
        mask = table.shape[0] - 1
        shift = np.uint64(64 - int(np.log2(table.shape[0])))
        n_used = 0
        for j in range(b):
            h = np.uint64(0)
            for k in range(d):
                c = cells[k, j]
                h = (h ^ np.uint64(c if c < _HASH_CAP else _HASH_CAP)) * np.uint64(0x9E3779B97F4A7C15)
            s = np.int64(h >> shift)
            while True:
                r = table[s]
                if r == 0:
                    table[s] = j + 1
                    slot_count[s] = 1
                    used[n_used] = s
                    n_used += 1
                    break
                same = True
                for k in range(d):
                    if cells[k, r - 1] != cells[k, j]:
                        same = False
                        break
                if same:
                    slot_count[s] += 1
                    break
                s = (s + 1) & mask
        for i in range(n_used):
            ent += terms[slot_count[used[i]]]
            table[used[i]] = 0
        return ent

    @njit(cache=True, nogil=True)
    def _scratch(b, d, dense_cap):
        t = 2
        while t < 2 * b:
            t *= 2
        return (np.empty((d, b)), np.empty(d), np.empty(d), np.empty((d, b)), np.empty(b, np.int32), np.zeros(max(dense_cap, 1), np.int32),
                np.zeros(t, np.int64), np.zeros(t, np.int64), np.empty(b, np.int64))

    @njit(cache=True, nogil=True)
    def _decision(x, dims, integrate, width, margin, terms, dense_cap, p, lo, hi, cells, keys, counts, table, slot_count, used):
        """ACE of one decision x (B, H, A): mean over the H steps of the entropy of the selected dims."""
        h = x.shape[1]
        total = 0.0
        for t in range(h):
            total += _set_entropy(x, t, dims, integrate, width, margin, terms, dense_cap, p, lo, hi, cells, keys, counts, table, slot_count, used)
        return total / h

    @njit(cache=True, nogil=True)
    def _serial(x, dims, integrate, width, margin, terms, dense_cap, out):
        n, b, h, _ = x.shape
        scratch = _scratch(b, dims.shape[0], dense_cap)
        for i in range(n):
            out[i] = _decision(x[i], dims, integrate, width, margin, terms, dense_cap, *scratch)

    @njit(cache=True, nogil=True, parallel=True)
    def _parallel(x, dims, integrate, width, margin, terms, dense_cap, out, n_blocks):
        n, b, h, _ = x.shape
        for blk in prange(n_blocks):
            scratch = _scratch(b, dims.shape[0], dense_cap)
            for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
                out[i] = _decision(x[i], dims, integrate, width, margin, terms, dense_cap, *scratch)


def prepare_samples(samples: np.ndarray) -> np.ndarray:
    """float32 / float64 C-contiguous samples (two compiled variants); other dtypes go to float64, exactly as numpy's copy does."""
    if samples.dtype != np.float32 and samples.dtype != np.float64:
        samples = samples.astype(np.float64)
    return samples if samples.flags.c_contiguous else np.ascontiguousarray(samples)


def store_entropy(samples: np.ndarray, dims: np.ndarray, integrate: bool, width: np.ndarray, margin: float, terms: np.ndarray,
                  *, parallel: bool = False, dense_cap: int = DENSE_CELLS) -> np.ndarray:
    """ACE (n,) of samples (n, B, H, A): per decision the mean over H of the histogram entropy (bits) of the
    B points of ``dims`` (int64, cumulated over H when ``integrate``) binned with ``width`` (d,) float64 on
    each set's own grid.

    ``terms`` is ``histogram.entropy_terms(B)``; ``parallel`` spreads blocks of decisions over numba's threads
    (the same per-decision function, so the same values; see the module docstring for when it pays);
    ``dense_cap`` is for tests (0 forces the hash table).
    """
    x = prepare_samples(samples)
    n = x.shape[0]
    out = np.empty(n)
    threads = numba.get_num_threads() if parallel else 1
    if threads > 1 and n >= 2 * threads:
        # blocks handed out one at a time: a thread whose core is busy with other work takes fewer
        with numba.parallel_chunksize(1):
            _parallel(x, dims, integrate, width, margin, terms, dense_cap, out, min(n, PARALLEL_BLOCKS * threads))
    else:
        _serial(x, dims, integrate, width, margin, terms, dense_cap, out)
    return out
