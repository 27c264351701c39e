"""Spectral norm: power iteration on A^T A, A[i][j] = 1 / ((i+j)(i+j+1)/2 + i + 1)."""


def matrix_entry(i, j):
    return 1.0 / ((i + j) * (i + j + 1) // 2 + i + 1)


def times_a(vector):
    n = len(vector)
    result = [0.0] * n
    for i in range(n):
        total = 0.0
        for j in range(n):
            total += matrix_entry(i, j) * vector[j]
        result[i] = total
    return result


def times_a_transposed(vector):
    n = len(vector)
    result = [0.0] * n
    for i in range(n):
        total = 0.0
        for j in range(n):
            total += matrix_entry(j, i) * vector[j]
        result[i] = total
    return result


def times_ata(vector):
    return times_a_transposed(times_a(vector))


def spectral_norm(n, iterations):
    u = [1.0] * n
    v = u
    for _ in range(iterations):
        v = times_ata(u)
        u = times_ata(v)
    uv = 0.0
    vv = 0.0
    for i in range(n):
        uv += u[i] * v[i]
        vv += v[i] * v[i]
    return (uv / vv) ** 0.5


MAIN = "spectral_norm"
ARGS = (50, 10)
