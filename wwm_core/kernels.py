"""The per-row loops of instance making, compiled with numba: planning (Google's algorithm, driven by
a Mersenne Twister that draws exactly what Python's ``random.Random`` draws), gathering plans into
rows, whole-word masking, Example/TFRecord encoding, and near dedup's shingle hashes (SHA-1).

Why compiled: each of these is a loop whose steps depend on the previous one (a greedy choice, a
document scan), which numpy can only run one step at a time for all rows; in Python, or in numpy
steps, they were most of the CPU time after the segmenter. Each kernel is the specification of
its step, written once: the callers in ``instances`` and ``records`` only shape arrays for them.

Compiled code is cached on disk beside this file (numba's ``cache=True``), so a process pays the
compile once per installation, not per run; ``scripts/setup.sh`` and the deploy image compile it
at install time (``python -m wwm_core.compile_kernels``). NUMBA_DISABLE_JIT=1 runs the same code as
plain Python, for debugging.
"""
import numba
import numpy as np


_jit = numba.njit(cache=True, nogil=True)

# ------------------------------------------------------------ Python's random.Random, exactly
# CPython's _randommodule.c: MT19937 seeded by init_by_array with the seed's 32-bit words (least
# significant first); random() joins 27 and 26 bits; getrandbits(k) takes 32-bit words low first.

_N, _M = 624, 397


@_jit
def mt_seeded(seed: np.uint64) -> np.ndarray:
    """The state of ``random.Random(seed)`` for 0 <= seed < 2**64: 624 words, then the position."""
    state = np.empty(_N + 1, np.uint32)
    mt = state[:_N]
    mt[0] = np.uint32(19650218)
    for i in range(1, _N):
        previous = np.uint64(mt[i - 1])
        mt[i] = np.uint32((np.uint64(1812433253) * (previous ^ (previous >> np.uint64(30))) + np.uint64(i))
                          & np.uint64(0xFFFFFFFF))
    low, high = np.uint64(seed) & np.uint64(0xFFFFFFFF), np.uint64(seed) >> np.uint64(32)
    key_length = 2 if high else 1
    i, j = 1, 0
    for _ in range(max(_N, key_length)):
        previous = np.uint64(mt[i - 1])
        word = low if j == 0 else high
        mt[i] = np.uint32(((np.uint64(mt[i]) ^ ((previous ^ (previous >> np.uint64(30))) * np.uint64(1664525)))
                           + word + np.uint64(j)) & np.uint64(0xFFFFFFFF))
        i += 1
        j += 1
        if i >= _N:
            mt[0] = mt[_N - 1]
            i = 1
        if j >= key_length:
            j = 0
    for _ in range(_N - 1):
        previous = np.uint64(mt[i - 1])
        mt[i] = np.uint32(((np.uint64(mt[i]) ^ ((previous ^ (previous >> np.uint64(30))) * np.uint64(1566083941)))
                           - np.uint64(i)) & np.uint64(0xFFFFFFFF))
        i += 1
        if i >= _N:
            mt[0] = mt[_N - 1]
            i = 1
    mt[0] = np.uint32(0x80000000)
    state[_N] = _N
    return state


@_jit
def _mt_next(state: np.ndarray) -> np.uint32:
    mt = state[:_N]
    if state[_N] >= _N:
        for k in range(_N):
            y = (mt[k] & np.uint32(0x80000000)) | (mt[(k + 1) % _N] & np.uint32(0x7FFFFFFF))
            value = mt[(k + _M) % _N] ^ (y >> np.uint32(1))
            if y & np.uint32(1):
                value ^= np.uint32(0x9908B0DF)
            mt[k] = value
        state[_N] = 0
    y = mt[state[_N]]
    state[_N] += 1
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@_jit
def mt_random(state: np.ndarray) -> float:
    """``random.Random.random()``."""
    a = _mt_next(state) >> np.uint32(5)
    b = _mt_next(state) >> np.uint32(6)
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)


@_jit
def mt_uniform_int(state: np.ndarray, low: int, high: int) -> int:
    """An int in [low, high] from one ``random()``: uniform like ``randint`` (up to 2**-53), at a
    tenth of its cost in the Python planner this replaces, whose draws it keeps."""
    return low + int(mt_random(state) * (high - low + 1))


@_jit
def _popcount(value: np.uint32) -> int:
    count = 0
    while value:
        value &= value - np.uint32(1)
        count += 1
    return count


@_jit
def mt_getrandbits_popcount(state: np.ndarray, bits: int) -> int:
    """The number of ones in ``random.Random.getrandbits(bits)`` (bits >= 1)."""
    ones = 0
    while bits > 0:
        word = _mt_next(state)
        if bits < 32:
            word >>= np.uint32(32 - bits)
        ones += _popcount(word)
        bits -= 32
    return ones


@_jit
def mt_getrandbits63(state: np.ndarray) -> np.int64:
    """``random.Random.getrandbits(63)``."""
    low = np.int64(_mt_next(state))
    high = np.int64(_mt_next(state) >> np.uint32(1))
    return (high << 32) | low


# ------------------------------------------------------------ planning (instances.pair_plans)

@_jit
def truncated_lengths(len_a: int, len_b: int, max_num_tokens: int):
    """How many tokens Google's truncate_seq_pair drops from A and from B (see instances)."""
    excess = len_a + len_b - max_num_tokens
    if excess <= 0:
        return 0, 0
    if len_a > len_b:
        first_a, first_b = min(excess, len_a - len_b), 0
    else:
        first_a, first_b = 0, min(excess, len_b - len_a)
    rest = excess - first_a - first_b
    return first_a + rest // 2, first_b + rest - rest // 2


@_jit
def _front_share(dropped: int, state: np.ndarray) -> int:
    """Each dropped token comes off the front or the back with a fair coin, as in Google's
    truncate_seq_pair: the number from the front is the number of ones among ``dropped`` bits."""
    return mt_getrandbits_popcount(state, dropped) if dropped else 0


@_jit
def _append(plans: np.ndarray, count: int, a_doc, a_start, a_end, b_doc, b_start, b_end, label, seed) -> np.ndarray:
    if count == len(plans):
        grown = np.empty((2 * len(plans) + 16, 8), np.int64)
        grown[:count] = plans[:count]
        plans = grown
    row = plans[count]
    row[0], row[1], row[2], row[3] = a_doc, a_start, a_end, b_doc
    row[4], row[5], row[6], row[7] = b_start, b_end, label, seed
    return plans


@_jit
def _append_pair(plans: np.ndarray, count: int, sop_swap: bool, a_doc, a_start, a_end, b_doc, b_start, b_end, label,
                 seed) -> np.ndarray:
    """A then B with ``label``; or, when sentence-order prediction swaps them, B then A, label 1."""
    if sop_swap:
        return _append(plans, count, b_doc, b_start, b_end, a_doc, a_start, a_end, 1, seed)
    return _append(plans, count, a_doc, a_start, a_end, b_doc, b_start, b_end, label, seed)


@_jit
def plan_pairs(starts: np.ndarray, first: np.ndarray, planned: np.ndarray, seeds: np.ndarray, dupe_factor: int,
               max_num_tokens: int, short_seq_prob: float, sop: bool, nsp_labels: bool, expected_rows: int):
    """The pair plans of the documents ``planned``, all dupes in turn from each one's own
    generator (``random.Random(seeds[k])``): Google's create_instances_from_document, as
    ``instances.bucket_pair_plans`` documents it. Document d's sentence start offsets are
    ``starts[first[d]:first[d + 1]]``; random next segments come from any document.
    Returns ((n, 8) plans in Plan's field order, random nexts that came from A's own document)."""
    plans = np.empty((max(expected_rows, 16), 8), np.int64)
    count, same_document = 0, 0
    last_document = len(first) - 2
    for k in range(len(planned)):
        document = planned[k]
        state = mt_seeded(seeds[k])
        doc_starts = starts[first[document]:first[document + 1]]
        num_sentences = len(doc_starts) - 1
        for _ in range(dupe_factor):
            target_seq_length = max_num_tokens
            if mt_random(state) < short_seq_prob:
                target_seq_length = mt_uniform_int(state, 2, max_num_tokens)
            chunk_start, chunk_size, current_length = 0, 0, 0
            i = 0
            while i < num_sentences:
                if chunk_size == 0:
                    chunk_start = i
                chunk_size += 1
                current_length += doc_starts[i + 1] - doc_starts[i]
                if i == num_sentences - 1 or current_length >= target_seq_length:
                    if sop and chunk_size == 1:  # cut inside the sentence, or alone if one token
                        a_first, a_last = doc_starts[chunk_start], doc_starts[chunk_start + 1]
                        if a_last - a_first < 2:
                            plans = _append(plans, count, document, a_first, a_last, -1, 0, 0, 0,
                                            mt_getrandbits63(state))
                        else:
                            cut = a_first + mt_uniform_int(state, 1, a_last - a_first - 1)
                            drop_a, drop_b = truncated_lengths(cut - a_first, a_last - cut, max_num_tokens)
                            a_front = _front_share(drop_a, state)
                            b_front = _front_share(drop_b, state)
                            a_s, a_e = a_first + a_front, cut - drop_a + a_front
                            b_s, b_e = cut + b_front, a_last - drop_b + b_front
                            plans = _append_pair(plans, count, mt_random(state) < 0.5, document, a_s, a_e,
                                                 document, b_s, b_e, 0, mt_getrandbits63(state))
                        count += 1
                        chunk_size, current_length = 0, 0
                        i += 1
                        continue
                    a_end = mt_uniform_int(state, 1, chunk_size - 1) if chunk_size >= 2 else 1
                    a_first, a_last = doc_starts[chunk_start], doc_starts[chunk_start + a_end]
                    is_random_next = not sop and (chunk_size == 1 or mt_random(state) < 0.5)
                    if is_random_next:
                        target_b_length = target_seq_length - (a_last - a_first)
                        b_doc = document
                        for _attempt in range(10):
                            b_doc = mt_uniform_int(state, 0, last_document)
                            if b_doc != document:
                                break
                        if b_doc == document:
                            same_document += 1
                        b_starts = starts[first[b_doc]:first[b_doc + 1]]
                        random_start = mt_uniform_int(state, 0, len(b_starts) - 2)
                        b_first = b_starts[random_start]
                        # Whole sentences from random_start until at least target_b_length tokens
                        # (bisect_left from random_start + 1).
                        low, high = random_start + 1, len(b_starts)
                        while low < high:
                            middle = (low + high) // 2
                            if b_starts[middle] < b_first + target_b_length:
                                low = middle + 1
                            else:
                                high = middle
                        b_last = b_starts[min(low, len(b_starts) - 1)]
                        # The segments we did not use go back into the document for the next chunk.
                        i -= chunk_size - a_end
                    else:
                        b_doc = document
                        b_first, b_last = doc_starts[chunk_start + a_end], doc_starts[chunk_start + chunk_size]
                    drop_a, drop_b, a_front, b_front = 0, 0, 0, 0
                    if a_last - a_first + b_last - b_first > max_num_tokens:
                        drop_a, drop_b = truncated_lengths(a_last - a_first, b_last - b_first, max_num_tokens)
                        a_front = _front_share(drop_a, state)
                        b_front = _front_share(drop_b, state)
                    a_s, a_e = a_first + a_front, a_last - drop_a + a_front
                    b_s, b_e = b_first + b_front, b_last - drop_b + b_front
                    label = 1 if (nsp_labels and is_random_next) else 0
                    plans = _append_pair(plans, count, sop and mt_random(state) < 0.5, document, a_s, a_e, b_doc,
                                         b_s, b_e, label, mt_getrandbits63(state))
                    count += 1
                    chunk_size, current_length = 0, 0
                i += 1
    return plans[:count].copy(), same_document


# ------------------------------------------------------------ whole-word masking (instances.mask_whole_words)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@_jit
def _splitmix_bits(seed: np.uint64, column: int) -> np.uint64:
    """The top 53 bits of draw column + 1 of the SplitMix64 stream of ``seed``."""
    state = seed + np.uint64(column + 1) * _GOLDEN
    state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    state ^= state >> np.uint64(31)
    return state >> np.uint64(11)


@_jit
def splitmix_uniform(seed: np.uint64, column: int) -> float:
    """That draw as a float in [0, 1)."""
    return float(_splitmix_bits(seed, column)) * (1.0 / 9007199254740992.0)


@_jit
def _sorted_uniform_keys(keys, spread):
    """``keys`` sorted (in ``spread``, returned): keys whose top bits are uniform, as the masking
    draws are, land in their place by those bits (a counting sort), and an insertion sort puts
    the few that share a slot in order: linear time, where a general sort of a row's groups
    dominated the masking time."""
    n = len(keys)
    bits = 0
    while (1 << bits) < n:
        bits += 1
    slots = np.zeros((1 << bits) + 1, np.int64)
    shift = np.uint64(64 - bits)
    for key in keys:
        slots[(np.int64(key >> shift) if bits else 0) + 1] += 1
    for slot in range(1, len(slots)):
        slots[slot] += slots[slot - 1]
    for key in keys:
        slot = np.int64(key >> shift) if bits else 0
        spread[slots[slot]] = key
        slots[slot] += 1
    for i in range(1, n):
        key, j = spread[i], i - 1
        while j >= 0 and spread[j] > key:
            spread[j + 1] = spread[j]
            j -= 1
        spread[j + 1] = key
    return spread[:n]


MAX_WIDTH = 1 << 13  # rows up to 8,192 tokens: a group's column fits in the low bits of its order key


@_jit
def _column_bits(width: int) -> int:
    """Bits of an order key that hold a group's column: 11 for rows up to 2,048 tokens (the key is
    then the draw's 53 bits and the column, as it always was), 13 up to MAX_WIDTH."""
    return 11 if width <= 1 << 11 else 13


@_jit
def _order_key(seed: np.uint64, column: int, column_bits: int) -> np.uint64:
    """A group's order key: the top bits of its first token's draw, then its column."""
    draw = _splitmix_bits(seed, column) << np.uint64(11)  # the 53 bits at the top of 64
    return ((draw >> np.uint64(column_bits)) << np.uint64(column_bits)) | np.uint64(column)


@_jit
def choose_span_rows(group_start, maskable, lengths, seeds, budgets, ngram_cumulative):
    """``masking.choose_spans`` row by row: (chosen tokens (n, width) bool, bincount of the chosen
    spans' lengths in words, bincount of the chosen words' sizes in tokens). Rows are at most
    MAX_WIDTH wide.

    A row's words are runs of maskable tokens, each begun by a group start. They are visited in
    the order of their first token's draw (column c of the row's stream); the word visited starts
    a span of k words (k drawn with draw 3 * width + c from ``ngram_cumulative``, the cumulative
    weights of 1, 2, ... words, renormalized to the spans that fit before the next unmaskable
    token: spans never cross [SEP]). A span that overlaps a chosen one, or would overflow the
    budget, is skipped, never cut. With one weight (word-level masking) no span draw is made, so
    the words and draws are exactly those of whole-word masking one word at a time."""
    n, width = group_start.shape
    max_words = len(ngram_cumulative)
    column_bits = _column_bits(width)
    column_mask = np.uint64((1 << column_bits) - 1)
    chosen = np.zeros((n, width), np.bool_)
    span_words = np.zeros(max_words + 1, np.int64)
    word_sizes = np.zeros(width + 1, np.int64)
    keys = np.empty(width, np.uint64)  # a word's order key
    spread = np.empty(width, np.uint64)
    first_of = np.empty(width + 1, np.int64)  # word k's first column, words in row order
    size_of = np.empty(width + 1, np.int64)
    word_at = np.zeros(width, np.int64)  # the word that begins at a column
    run_end = np.empty(width + 1, np.int64)  # one past the last word adjacent to word k (no gap between)
    taken_word = np.zeros(width + 1, np.bool_)
    for row in range(n):
        length, seed = lengths[row], seeds[row]
        words = 0
        column = 0
        while column < length:
            end = column + 1
            while end < length and not group_start[row, end] and maskable[row, end]:
                end += 1
            # A run begun by an unmaskable token ([CLS], [SEP]) is never masked.
            if maskable[row, column]:
                keys[words] = _order_key(seed, column, column_bits)
                first_of[words] = column
                size_of[words] = end - column
                word_at[column] = words
                taken_word[words] = False
                words += 1
            column = end
        if max_words > 1:
            for k in range(words - 1, -1, -1):
                adjacent = k + 1 < words and first_of[k] + size_of[k] == first_of[k + 1]
                run_end[k] = run_end[k + 1] if adjacent else k + 1
        order = _sorted_uniform_keys(keys[:words], spread)
        taken, budget = 0, budgets[row]
        for j in range(words):
            first = np.int64(order[j] & column_mask)
            k = word_at[first]
            span = 1
            if max_words > 1:
                if taken_word[k]:
                    continue
                available = min(max_words, run_end[k] - k)
                if available > 1:
                    draw = splitmix_uniform(seed, 3 * width + first) * ngram_cumulative[available - 1]
                    while span < available and draw >= ngram_cumulative[span - 1]:
                        span += 1
            size, overlaps = 0, False
            for word in range(k, k + span):
                size += size_of[word]
                overlaps = overlaps or taken_word[word]
            if overlaps or taken + size > budget:
                continue
            taken += size
            span_words[span] += 1
            for word in range(k, k + span):
                taken_word[word] = True
                word_sizes[size_of[word]] += 1
                chosen[row, first_of[word]:first_of[word] + size_of[word]] = True
    used = np.flatnonzero(word_sizes)
    return chosen, span_words, word_sizes[:used[-1] + 1 if len(used) else 0].copy()


_KEY_SEED = np.uint64(0x243F6A8885A308D3)


@_jit
def _mix64(value: np.uint64) -> np.uint64:
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


@_jit
def _tokens_key(tokens) -> np.uint64:
    """A 64-bit key of a sequence of token ids (its length included)."""
    key = _mix64(_KEY_SEED + np.uint64(len(tokens)))
    for token in tokens:
        key = _mix64(key + _GOLDEN + np.uint64(token))
    return key


@_jit
def tokens_keys(tokens, offsets):
    """The key of each sequence ``tokens[offsets[i]:offsets[i + 1]]`` (``masking.SimilarWords``)."""
    keys = np.empty(len(offsets) - 1, np.uint64)
    for i in range(len(offsets) - 1):
        keys[i] = _tokens_key(tokens[offsets[i]:offsets[i + 1]])
    return keys


@_jit
def similar_entry(word, keys, word_offsets, word_tokens) -> int:
    """The entry of ``word`` (token ids) in a SimilarWords table, or -1."""
    key = _tokens_key(word)
    low, high = 0, len(keys)
    while low < high:
        middle = (low + high) // 2
        if keys[middle] < key:
            low = middle + 1
        else:
            high = middle
    while low < len(keys) and keys[low] == key:
        first, last = word_offsets[low], word_offsets[low + 1]
        if last - first == len(word):
            same = True
            for t in range(len(word)):
                if word_tokens[first + t] != word[t]:
                    same = False
                    break
            if same:
                return low
        low += 1
    return -1


MACBERT_SIMILAR, MACBERT_RANDOM, MACBERT_KEPT, MACBERT_NO_CANDIDATE = 0, 1, 2, 3


@_jit
def replace_rows(ids, chosen, group_start, lengths, seeds, macbert: bool, mask: int, vocab_size: int,
                 max_predictions: int, similar_keys, similar_word_offsets, similar_word_tokens,
                 similar_candidate_offsets, similar_candidate_tokens):
    """``masking.replace_words`` row by row: (output ids, positions, original ids, counts, word
    decisions). Draws by column c of a row of width w: w + c decides, 2w + c gives a random id;
    with MacBERT's rule a word decides once, by its first column f, and 4w + f picks its similar
    word. ``decisions`` counts MacBERT's words: similar, random, kept, and (among the random)
    those that drew "similar" but had no candidate of their length."""
    n, width = ids.shape
    output = ids.copy()
    positions = np.zeros((n, max_predictions), np.int32)
    labels = np.zeros((n, max_predictions), np.int32)
    counts = np.zeros(n, np.int64)
    decisions = np.zeros(4, np.int64)
    for row in range(n):
        length, seed = lengths[row], seeds[row]
        count = 0
        column = 0
        while column < length:
            if not chosen[row, column]:
                column += 1
                continue
            end = column + 1
            if macbert:  # the whole word: chosen tokens up to the next group start
                while end < length and chosen[row, end] and not group_start[row, end]:
                    end += 1
            for c in range(column, end):
                positions[row, count] = c
                labels[row, count] = ids[row, c]
                count += 1
            decision = splitmix_uniform(seed, width + column)
            if not macbert:  # Google's rule, per token
                if decision < 0.8:
                    output[row, column] = mask
                elif decision >= 0.9:
                    output[row, column] = np.int32(splitmix_uniform(seed, 2 * width + column) * vocab_size)
            elif decision < 0.9:
                entry = -1
                if decision < 0.8:
                    entry = similar_entry(ids[row, column:end], similar_keys, similar_word_offsets,
                                           similar_word_tokens)
                    if entry < 0 or similar_candidate_offsets[entry + 1] == similar_candidate_offsets[entry]:
                        entry = -1
                        decisions[MACBERT_NO_CANDIDATE] += 1
                if entry >= 0:
                    size = end - column
                    first = similar_candidate_offsets[entry]
                    candidates = (similar_candidate_offsets[entry + 1] - first) // size
                    pick = min(candidates - 1, np.int64(splitmix_uniform(seed, 4 * width + column) * candidates))
                    for t in range(size):
                        output[row, column + t] = similar_candidate_tokens[first + pick * size + t]
                    decisions[MACBERT_SIMILAR] += 1
                else:  # random tokens, never [MASK] (MacBERT feeds no [MASK]): uniform over the other ids
                    for c in range(column, end):
                        token = np.int32(splitmix_uniform(seed, 2 * width + c) * (vocab_size - 1))
                        output[row, c] = token + 1 if token >= mask else token
                    decisions[MACBERT_RANDOM] += 1
            else:
                decisions[MACBERT_KEPT] += 1
            column = end
        counts[row] = count
    return output, positions, labels, counts, decisions


# ------------------------------------------------------------ tf.train.Example records, framed (records.ExampleEncoder)

@_jit
def _varint_size(value) -> int:
    if value < 0x80:
        return 1
    if value < 0x4000:
        return 2
    size = 3
    value >>= 21
    while value > 0:
        value >>= 7
        size += 1
    return size


@_jit
def _put_varint(out, at: int, value) -> int:
    while value >= 0x80:
        out[at] = np.uint8((value & 0x7F) | 0x80)
        value >>= 7
        at += 1
    out[at] = np.uint8(value)
    return at + 1


@_jit
def frame_examples(values, columns, is_float, keys, key_offsets, tags):
    """Rows of feature values -> one TFRecord frame per row, each a serialized tf.train.Example:
    (bytes, frame offsets (n + 1)). Row r's frame is its record's length (8 bytes), 4 bytes for
    the length's checksum, the record, 4 bytes for the record's checksum; the checksums are left
    zero, for ``records`` to fill.

    Feature f's values are ``values[:, columns[f]:columns[f + 1]]`` (non-negative ints below
    2**32, or a float's 32 bits where ``is_float[f]``), written packed under the map entry prefix
    ``keys[key_offsets[f]:key_offsets[f + 1]]`` with the value list's field tag ``tags[f]``, in
    the order given (protobuf's deterministic serialization writes map entries in key order).
    Each length is a varint of the bytes that follow, as protobuf writes them:
    Example{features: Features{feature: entry{key, value: Feature{list: List{packed values}}}}}.
    A row's payloads are written once, to a scratch row, and copied behind their headers.
    """
    n, num_features = values.shape[0], len(tags)
    # A row's bytes at most: 5 per value, and per feature its key and four headers of 6 bytes.
    row_bound = 5 * values.shape[1] + num_features * 32 + key_offsets[num_features] + 32
    scratch = np.empty(row_bound, np.uint8)
    payload_start = np.empty(num_features + 1, np.int64)
    value_list = np.empty(num_features, np.int64)  # a feature's bytes: its list, then the Feature
    feature = np.empty(num_features, np.int64)
    offsets = np.zeros(n + 1, np.int64)
    out = np.empty(max(1024, n * row_bound // 2), np.uint8)
    for row in range(n):
        at = 0
        for f in range(num_features):
            payload_start[f] = at
            if is_float[f]:
                for c in range(columns[f], columns[f + 1]):
                    value = values[row, c]
                    for k in range(4):
                        scratch[at + k] = np.uint8((value >> (8 * k)) & 0xFF)
                    at += 4
            else:
                for c in range(columns[f], columns[f + 1]):
                    at = _put_varint(scratch, at, values[row, c])
        payload_start[num_features] = at
        total = 0  # the Features message's bytes
        for f in range(num_features):
            size = payload_start[f + 1] - payload_start[f]
            value_list[f] = 1 + _varint_size(size) + size
            feature[f] = 1 + _varint_size(value_list[f]) + value_list[f]
            entry = key_offsets[f + 1] - key_offsets[f] + 1 + _varint_size(feature[f]) + feature[f]
            total += 1 + _varint_size(entry) + entry
        record = 1 + _varint_size(total) + total
        start = offsets[row]
        if start + 16 + record > len(out):
            grown = np.empty(max(2 * len(out), start + 16 + record), np.uint8)
            grown[:start] = out[:start]
            out = grown
        for k in range(8):
            out[start + k] = np.uint8((record >> (8 * k)) & 0xFF)
        out[start + 8:start + 12] = 0
        out[start + 12] = 0x0A
        at = _put_varint(out, start + 13, total)
        for f in range(num_features):
            size = payload_start[f + 1] - payload_start[f]
            key_length = key_offsets[f + 1] - key_offsets[f]
            out[at] = 0x0A
            at = _put_varint(out, at + 1, key_length + 1 + _varint_size(feature[f]) + feature[f])
            out[at:at + key_length] = keys[key_offsets[f]:key_offsets[f + 1]]
            at += key_length
            out[at] = 0x12
            at = _put_varint(out, at + 1, feature[f])
            out[at] = tags[f]
            at = _put_varint(out, at + 1, value_list[f])
            out[at] = 0x0A
            at = _put_varint(out, at + 1, size)
            out[at:at + size] = scratch[payload_start[f]:payload_start[f + 1]]
            at += size
        out[at:at + 4] = 0
        offsets[row + 1] = at + 4
    return out[:offsets[n]], offsets


# ------------------------------------------------------------ rows of instances (instances.gather)

@_jit
def gather_rows(fields, pool_ids, pool_group_start, doc_offsets, cls: int, sep: int, width: int):
    """Plans -> padded rows [CLS] A [SEP] (B [SEP]): (ids, group starts, segment ids, lengths).
    Group starts are True off the tokens (special tokens, padding) and at each segment's first
    token, where a word cut by truncation starts a (partial) group."""
    n = len(fields)
    ids = np.zeros((n, width), np.int32)
    group_start = np.ones((n, width), np.bool_)
    segment_ids = np.zeros((n, width), np.uint8)
    lengths = np.zeros(n, np.int64)
    for row in range(n):
        a_first = doc_offsets[fields[row, 0]] + fields[row, 1]
        a_len = fields[row, 2] - fields[row, 1]
        ids[row, 0] = cls
        for k in range(a_len):
            ids[row, 1 + k] = pool_ids[a_first + k]
            group_start[row, 1 + k] = pool_group_start[a_first + k]
        group_start[row, 1] = True
        ids[row, a_len + 1] = sep
        length = a_len + 2
        if fields[row, 3] >= 0:
            b_first = doc_offsets[fields[row, 3]] + fields[row, 4]
            b_len = fields[row, 5] - fields[row, 4]
            for k in range(b_len):
                ids[row, length + k] = pool_ids[b_first + k]
                group_start[row, length + k] = pool_group_start[b_first + k]
                segment_ids[row, length + k] = 1
            group_start[row, length] = True
            length += b_len + 1
            ids[row, length - 1] = sep
            segment_ids[row, length - 1] = 1
        lengths[row] = length
    return ids, group_start, segment_ids, lengths



# ------------------------------------------------------------ SHA-1 of many short byte strings
# Near dedup's shingle hash is datasketch's sha1_hash32 (the first 4 bytes of SHA-1, read
# little-endian); hashlib called once per shingle was most of near dedup's CPU (measured:
# docs/performance.md, Memory). FIPS 180-4, 6.1.

_MASK32 = np.uint64(0xFFFFFFFF)


@_jit
def _rotl32(x, n: int):
    return ((x << np.uint64(n)) | (x >> np.uint64(32 - n))) & _MASK32


@_jit
def _sha1_compress(state, block, words):
    """One 64-byte ``block`` into ``state`` (5 words, as uint64 holding 32 bits)."""
    for t in range(16):
        words[t] = ((np.uint64(block[4 * t]) << np.uint64(24)) | (np.uint64(block[4 * t + 1]) << np.uint64(16))
                    | (np.uint64(block[4 * t + 2]) << np.uint64(8)) | np.uint64(block[4 * t + 3]))
    for t in range(16, 80):
        words[t] = _rotl32(words[t - 3] ^ words[t - 8] ^ words[t - 14] ^ words[t - 16], 1)
    a, b, c, d, e = state[0], state[1], state[2], state[3], state[4]
    for t in range(80):
        if t < 20:
            f, k = (b & c) | ((~b & _MASK32) & d), np.uint64(0x5A827999)
        elif t < 40:
            f, k = b ^ c ^ d, np.uint64(0x6ED9EBA1)
        elif t < 60:
            f, k = (b & c) | (b & d) | (c & d), np.uint64(0x8F1BBCDC)
        else:
            f, k = b ^ c ^ d, np.uint64(0xCA62C1D6)
        temp = (_rotl32(a, 5) + f + e + k + words[t]) & _MASK32
        a, b, c, d, e = temp, a, _rotl32(b, 30), c, d
    state[0] = (state[0] + a) & _MASK32
    state[1] = (state[1] + b) & _MASK32
    state[2] = (state[2] + c) & _MASK32
    state[3] = (state[3] + d) & _MASK32
    state[4] = (state[4] + e) & _MASK32


@_jit
def sha1_hash32(data, begins, ends):
    """For each message ``data[begins[i]:ends[i]]`` (uint8): the first 4 bytes of its SHA-1
    digest as a little-endian uint32, as datasketch.hashfunc.sha1_hash32 gives."""
    out = np.empty(len(begins), np.uint32)
    state = np.empty(5, np.uint64)
    words = np.empty(80, np.uint64)
    tail = np.empty(128, np.uint8)
    for i in range(len(begins)):
        state[0], state[1], state[2] = np.uint64(0x67452301), np.uint64(0xEFCDAB89), np.uint64(0x98BADCFE)
        state[3], state[4] = np.uint64(0x10325476), np.uint64(0xC3D2E1F0)
        at, end = begins[i], ends[i]
        while end - at >= 64:
            _sha1_compress(state, data[at:at + 64], words)
            at += 64
        rest = end - at
        tail[:] = 0
        tail[:rest] = data[at:end]
        tail[rest] = 0x80
        size = 64 if rest < 56 else 128
        bits = np.uint64(end - begins[i]) * np.uint64(8)
        for j in range(8):
            tail[size - 1 - j] = np.uint8((bits >> np.uint64(8 * j)) & np.uint64(0xFF))
        _sha1_compress(state, tail[:64], words)
        if size == 128:
            _sha1_compress(state, tail[64:], words)
        first = state[0]  # the digest's first 4 bytes are this word big-endian; read them little-endian
        out[i] = np.uint32(((first & np.uint64(0xFF)) << np.uint64(24)) | ((first & np.uint64(0xFF00)) << np.uint64(8))
                           | ((first >> np.uint64(8)) & np.uint64(0xFF00)) | (first >> np.uint64(24)))
    return out
