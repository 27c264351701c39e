"""Call-heavy: many small functions calling each other a few levels deep."""


def square(x):
    return x * x


def clamp(x, low, high):
    if x < low:
        return low
    if x > high:
        return high
    return x


def mix(a, b):
    return (a * 31 + b) & 0xFFFF


def is_odd(x):
    return x & 1 == 1


def half_or_triple(x):
    if is_odd(x):
        return 3 * x + 1
    return x // 2


def step(x, i):
    y = half_or_triple(x)
    y = mix(y, square(i & 0xFF))
    return clamp(y, 1, 60000)


def checksum(values):
    total = 0
    for value in values:
        total = mix(total, value)
    return total


def run(n):
    x = 7
    trail = []
    for i in range(n):
        x = step(x, i)
        if i % 64 == 0:
            trail.append(x)
    return x, checksum(trail)


MAIN = "run"
ARGS = (50_000,)
