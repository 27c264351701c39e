"""What the leak tests of C code measure: the bytes traced memory grows by
over each of several batches of rounds.  A leak of even one small object a
round grows every batch by some 28 bytes a round; what the interpreter keeps
once (free lists, caches, other tests' leftovers) grows some batches, not
all: a test asserts that the smallest growth is small."""

import gc
import tracemalloc


def growth_per_batch(one_round, batches: int = 5, rounds: int = 1000) -> list[int]:
    """Bytes of traced memory more after each batch of `rounds` calls of `one_round`."""
    grown = []
    tracemalloc.start()
    try:
        for _ in range(batches):
            start, _ = tracemalloc.get_traced_memory()
            for _ in range(rounds):
                one_round()
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
            grown.append(end - start)
    finally:
        tracemalloc.stop()
    return grown
