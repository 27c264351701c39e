"""Word counting: split, strip and lower words, count them in a dict, sort the top ones."""

VOCABULARY = ("the quick brown fox jumps over a lazy dog while seven wizards "
              "quietly box jumping frogs near the old mill and the river").split()


def make_text(word_count):
    """Deterministic text: words drawn by a linear congruential generator, some
    capitalised, some followed by punctuation, in lines of twelve words."""
    words = []
    state = 12345
    for k in range(word_count):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        word = VOCABULARY[state % len(VOCABULARY)]
        if state & 0x30 == 0:
            word = word.capitalize()
        if state & 0x700 == 0x100:
            word += ","
        elif state & 0x700 == 0x200:
            word += "."
        words.append(word)
        if k % 12 == 11:
            words.append("\n")
    return " ".join(words)


def count_words(text):
    counts = {}
    for word in text.split():
        word = word.strip(".,").lower()
        counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:5], len(counts)


MAIN = "count_words"
ARGS = (make_text(60_000),)
