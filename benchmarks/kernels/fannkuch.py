"""Fannkuch: flip prefixes of every permutation of 0..n-1 until 0 leads; count the flips."""


def count_flips(permutation):
    deck = permutation[:]
    flips = 0
    first = deck[0]
    while first:
        deck[:first + 1] = deck[first::-1]
        flips += 1
        first = deck[0]
    return flips


def fannkuch(n):
    """Max flips over all permutations and a checksum alternating in sign, with the
    permutations visited in the order of a rotating counter."""
    permutation = list(range(n))
    counter = [0] * n
    max_flips = 0
    checksum = 0
    sign = 1
    while True:
        flips = count_flips(permutation)
        if flips > max_flips:
            max_flips = flips
        checksum += sign * flips
        sign = -sign
        level = 1
        while level < n:
            first = permutation[0]
            permutation[:level] = permutation[1:level + 1]
            permutation[level] = first
            if counter[level] < level:
                counter[level] += 1
                break
            counter[level] = 0
            level += 1
        else:
            return max_flips, checksum


MAIN = "fannkuch"
ARGS = (8,)
