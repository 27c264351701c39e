"""The small function whose dump tests/data/expected_dump.txt shows (tests/test_dump.py)."""


def clamp(x, limit):
    if x > limit:
        return limit
    return x + 1
