"""Integer accumulation: a counted loop of small-int multiply and add."""


def sum_of_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


MAIN = "sum_of_squares"
ARGS = (300_000,)
