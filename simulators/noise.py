"""Counter-based randomness: every random number is a function of (seed, subject, stream, counter).

A stateful generator would make a reading depend on how many were drawn
before it, so the output would change with the chunk size of the run and a
live run could not resume a history run. Hashing the counter instead (the
splitmix64 finaliser, as in Java's SplittableRandom and numpy's SeedSequence)
makes slot k of a point the same number whichever window asks for it.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0**-53


def key(seed: int, *parts: object) -> int:
    """A 64-bit stream key for a seed and a subject (point code, card, stream name, ...).

    blake2b rather than hash(): Python's str hash is salted per process.
    """
    text = "|".join([str(seed), *(str(p) for p in parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # Arrays only: numpy warns on scalar uint64 overflow, and the suite turns warnings into errors.
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def uniform(stream: int, counter: I64) -> F64:
    """Uniform [0, 1) numbers, one per counter value, for the given stream key."""
    c = np.asarray(counter, dtype=np.int64).astype(np.uint64)
    x = _mix(c * _GOLDEN + np.full(c.shape, stream, dtype=np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def uniform1(stream: int, counter: int) -> float:
    """One uniform [0, 1) number (a scalar convenience over `uniform`)."""
    return float(uniform(stream, np.array([counter], dtype=np.int64))[0])


def normal(stream: int, counter: I64) -> F64:
    """Standard normal numbers by Box-Muller over two derived uniform streams."""
    u1 = 1.0 - uniform(stream, counter)  # (0, 1]: log is finite
    u2 = uniform(stream ^ 0x5DEECE66D, counter)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def smooth(stream: int, t_ms: I64, scale_ms: int) -> F64:
    """Smooth noise in [-1, 1] with features about `scale_ms` wide (smoothstepped value noise).

    Random values sit on knots every `scale_ms`; between knots they are blended
    with a smoothstep so the signal wanders without jumps, as gas levels do.
    """
    t = np.asarray(t_ms, dtype=np.int64)
    i = np.floor_divide(t, scale_ms)
    f = (t - i * scale_ms).astype(np.float64) / scale_ms
    s = f * f * (3.0 - 2.0 * f)
    a = uniform(stream, i) * 2.0 - 1.0
    b = uniform(stream, i + 1) * 2.0 - 1.0
    out: F64 = a + (b - a) * s
    return out
