"""Comprehensions over records: filter, project, group and index rows of dicts with
list, set and dict comprehensions, the loops of much data-handling code."""

GROUPS = ("alpha", "beta", "gamma", "delta", "epsilon")


def make_rows(count):
    """Deterministic rows (an id, a group, a score, a flag) drawn by a linear
    congruential generator."""
    rows = []
    state = 2024
    for i in range(count):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        rows.append({"id": i, "group": GROUPS[state % 5], "score": state % 1000,
                     "active": state & 0x100 == 0})
    return rows


def summarize(rows):
    active = [row for row in rows if row["active"]]
    scores = [row["score"] * 2 + 1 for row in active]
    groups = {row["group"] for row in rows}
    by_id = {row["id"]: row["score"] for row in active if row["score"] > 100}
    totals = {group: sum([row["score"] for row in rows if row["group"] == group])
              for group in sorted(groups)}
    top = sorted([(score, key) for key, score in by_id.items() if score > 990])[-3:]
    return len(active), sum(scores), totals, top


MAIN = "summarize"
ARGS = (make_rows(20_000),)
