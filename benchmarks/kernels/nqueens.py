"""N-queens: backtracking over rows with sets of taken columns and diagonals."""


def place(n, row, columns, rising, falling, queens, solutions):
    """Extend `queens` (a tuple of columns, one per row above `row`) in every way."""
    if row == n:
        solutions.append(queens)
        return
    for column in range(n):
        if column in columns or row + column in rising or row - column in falling:
            continue
        columns.add(column)
        rising.add(row + column)
        falling.add(row - column)
        place(n, row + 1, columns, rising, falling, queens + (column,), solutions)
        columns.remove(column)
        rising.remove(row + column)
        falling.remove(row - column)


def is_solution(queens):
    n = len(queens)
    for i in range(n):
        for j in range(i + 1, n):
            if queens[i] == queens[j] or abs(queens[i] - queens[j]) == j - i:
                return False
    return True


def solve(n):
    """Every solution, checked pairwise; the count and the first and last."""
    solutions = []
    place(n, 0, set(), set(), set(), (), solutions)
    for queens in solutions:
        if not is_solution(queens):
            raise AssertionError(f"not a solution: {queens}")
    return len(solutions), solutions[0], solutions[-1]


MAIN = "solve"
ARGS = (9,)
