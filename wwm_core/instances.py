"""Training instances: Google's create_pretraining_data.py logic with whole-word masking.

A document is a list of sentences; a sentence is ``(ids, group_start)``: int32 token ids and a bool
array marking where each whole-word group begins (see ``tokenization.group_starts``). All
randomness comes from the ``random.Random`` passed in.
"""
import dataclasses
import random

import numpy as np

RECIPES = ("bert-wwm", "roberta-wwm-ext")


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    cls: int
    sep: int
    mask: int
    vocab_size: int


@dataclasses.dataclass(frozen=True)
class Instance:
    input_ids: np.ndarray  # int32, after masking, unpadded: [CLS] a [SEP] (b [SEP])
    segment_ids: np.ndarray  # uint8, unpadded
    masked_positions: np.ndarray  # int32, sorted, unique
    masked_labels: np.ndarray  # int32, the original ids at masked_positions
    is_random_next: bool


def mask_whole_words(ids, group_start, *, rng: random.Random, special: SpecialIds,
                     masked_lm_prob: float, max_predictions_per_seq: int):
    """Google's create_masked_lm_predictions with do_whole_word_mask=True.

    Groups are shuffled and taken whole while they fit; a group that would overflow the budget is
    skipped, never cut. Each chosen token independently becomes [MASK] (80%), stays (10%) or
    becomes a random id (10%), as in Google's code. Returns (output_ids, positions, labels).
    """
    num_tokens = len(ids)
    is_special = (ids == special.cls) | (ids == special.sep)
    boundary = group_start | is_special
    boundary_positions = np.flatnonzero(boundary)
    next_boundary = np.append(boundary_positions[1:], num_tokens)
    candidate = ~is_special[boundary_positions]
    starts = boundary_positions[candidate].tolist()
    ends = next_boundary[candidate].tolist()
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(num_tokens * masked_lm_prob))))
    output_ids = ids.copy()
    positions = []
    # Groups are visited in a uniformly random order, drawn lazily (a Fisher-Yates shuffle that
    # stops once the budget is full): the same distribution as shuffling them all, at a fraction
    # of the cost, since only a handful of groups are ever looked at.
    order = list(range(len(starts)))
    for k in range(len(order)):
        if len(positions) >= num_to_predict:
            break
        pick = rng.randrange(k, len(order))
        order[k], order[pick] = order[pick], order[k]
        start, end = starts[order[k]], ends[order[k]]
        if len(positions) + end - start > num_to_predict:
            continue
        for position in range(start, end):
            positions.append(position)
            if rng.random() < 0.8:
                output_ids[position] = special.mask
            elif rng.random() < 0.5:
                pass  # keep the original token
            else:
                output_ids[position] = rng.randrange(special.vocab_size)
    positions = np.array(sorted(positions), dtype=np.int32)
    return output_ids, positions, ids[positions]


def _concat(sentences):
    if len(sentences) == 1:
        return sentences[0]
    return (np.concatenate([s[0] for s in sentences]), np.concatenate([s[1] for s in sentences]))


def _truncate_pair(a, b, max_num_tokens, rng):
    """Google's truncate_seq_pair: drop one token at a time from the front or back of the longer side."""
    a_front = a_back = b_front = b_back = 0
    len_a, len_b = len(a[0]), len(b[0])
    while len_a + len_b > max_num_tokens:
        if len_a > len_b:
            len_a -= 1
            if rng.random() < 0.5:
                a_front += 1
            else:
                a_back += 1
        else:
            len_b -= 1
            if rng.random() < 0.5:
                b_front += 1
            else:
                b_back += 1
    return _slice(a, a_front, a_back), _slice(b, b_front, b_back)


def _slice(sentence, front, back):
    if front == 0 and back == 0:
        return sentence
    ids, group_start = sentence
    ids = ids[front : len(ids) - back]
    group_start = group_start[front : len(group_start) - back].copy()
    if len(group_start):
        group_start[0] = True  # a word cut at the front is still a (partial) group
    return ids, group_start


def _assemble(a, b, special):
    """[CLS] a [SEP] (b [SEP]) with its segment ids and group starts (special tokens start groups)."""
    parts_ids = [np.array([special.cls], np.int32), a[0], np.array([special.sep], np.int32)]
    parts_start = [np.ones(1, bool), a[1], np.ones(1, bool)]
    segments = [np.zeros(len(a[0]) + 2, np.uint8)]
    if b is not None:
        parts_ids += [b[0], np.array([special.sep], np.int32)]
        parts_start += [b[1], np.ones(1, bool)]
        segments.append(np.ones(len(b[0]) + 1, np.uint8))
    return np.concatenate(parts_ids), np.concatenate(parts_start), np.concatenate(segments)


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    max_seq_length: int
    max_predictions_per_seq: int
    masked_lm_prob: float
    short_seq_prob: float


def _masked_instance(a, b, is_random_next, *, rng, special, config):
    ids, group_start, segment_ids = _assemble(a, b, special)
    output_ids, positions, labels = mask_whole_words(
        ids, group_start, rng=rng, special=special,
        masked_lm_prob=config.masked_lm_prob, max_predictions_per_seq=config.max_predictions_per_seq)
    return Instance(output_ids, segment_ids, positions, labels, is_random_next)


def bert_wwm_instances(documents, document_index, *, rng: random.Random, special: SpecialIds,
                       config: MaskingConfig):
    """Google's create_instances_from_document (with NSP) for ``documents[document_index]``.

    ``documents`` is the pool random next segments are drawn from (in the pipeline: the documents
    of one bucket, so a partner is found without holding the corpus in memory).
    """
    document = documents[document_index]
    max_num_tokens = config.max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < config.short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk, current_length = [], 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment[0])
        if i == len(document) - 1 or current_length >= target_seq_length:
            a_end = 1
            if len(current_chunk) >= 2:
                a_end = rng.randint(1, len(current_chunk) - 1)
            tokens_a = _concat(current_chunk[:a_end])
            is_random_next = len(current_chunk) == 1 or rng.random() < 0.5
            if is_random_next:
                target_b_length = target_seq_length - len(tokens_a[0])
                random_index = document_index
                for _ in range(10):
                    random_index = rng.randint(0, len(documents) - 1)
                    if random_index != document_index:
                        break
                random_document = documents[random_index]
                random_start = rng.randint(0, len(random_document) - 1)
                b_parts, b_length = [], 0
                for j in range(random_start, len(random_document)):
                    b_parts.append(random_document[j])
                    b_length += len(random_document[j][0])
                    if b_length >= target_b_length:
                        break
                tokens_b = _concat(b_parts)
                # The segments we did not use go back into the document for the next chunk.
                i -= len(current_chunk) - a_end
            else:
                tokens_b = _concat(current_chunk[a_end:])
            tokens_a, tokens_b = _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            instances.append(_masked_instance(tokens_a, tokens_b, is_random_next,
                                              rng=rng, special=special, config=config))
            current_chunk, current_length = [], 0
        i += 1
    return instances


def roberta_wwm_ext_instances(document, *, rng: random.Random, special: SpecialIds, config: MaskingConfig):
    """No NSP: consecutive sentences of one document packed into [CLS] ... [SEP] up to max_seq_length.

    Instances never cross a document boundary (RoBERTa's DOC-SENTENCES); the last instance of a
    document may be short. A sentence longer than the budget is cut into budget-sized pieces.
    """
    budget = config.max_seq_length - 2
    instances = []
    chunk, length = [], 0

    def flush():
        nonlocal chunk, length
        if chunk:
            instances.append(_masked_instance(_concat(chunk), None, False, rng=rng, special=special, config=config))
        chunk, length = [], 0

    for ids, group_start in document:
        for offset in range(0, len(ids), budget):
            piece = _slice((ids, group_start), offset, max(0, len(ids) - offset - budget))
            if length + len(piece[0]) > budget:
                flush()
            chunk.append(piece)
            length += len(piece[0])
    flush()
    return instances
