"""Near-duplicate detection with MinHash over character n-grams and LSH banding.

The signatures come from datasketch, given the shingles' SHA-1 hashes (its default hash, computed
by a compiled kernel rather than hashlib once per shingle); the banding is done by the pipeline
(documents that share a band key meet in one band group), so no worker holds an index of the
corpus.
"""
import hashlib

import numpy as np

NUM_PERM = 128
SHINGLE_CHARS = 5
SEED = 1


def shingle_hashes(sentences, *, size: int = SHINGLE_CHARS) -> np.ndarray:
    """datasketch's sha1_hash32 of every character n-gram of the text without spaces (the whole
    text when it is that short), as UTF-8: computed on the text's bytes by a compiled SHA-1, each
    n-gram the bytes between its first character's start and the start of the character after
    it. Repeats are left in: they do not change a MinHash."""
    from wwm_core import kernels

    data = np.frombuffer("".join(sentences).replace(" ", "").encode("utf-8"), np.uint8)
    starts = np.flatnonzero((data & 0xC0) != 0x80)  # the first byte of each character
    if len(starts) <= size:
        return kernels.sha1_hash32(data, np.zeros(min(len(starts), 1), np.int64),
                                   np.full(min(len(starts), 1), len(data), np.int64))
    bounds = np.append(starts, len(data))
    return kernels.sha1_hash32(data, bounds[:len(starts) - size + 1], bounds[size:])


def signatures(sentence_lists) -> list:
    """MinHash signatures (uint64 arrays of NUM_PERM values) of many documents at once:
    datasketch's MinHash of the shingles' hashes (``hashfunc=int``: they are hashed already)."""
    from datasketch import MinHash  # imported here: it pulls in scipy (slow to import), needed only with near-dedup

    minhashes = MinHash.bulk([np.unique(shingle_hashes(s)).tolist() for s in sentence_lists], num_perm=NUM_PERM,
                             seed=SEED, hashfunc=int)
    return [m.hashvalues for m in minhashes]


def band_layout(threshold: float, num_perm: int = NUM_PERM):
    """(bands, rows) with bands * rows = num_perm whose S-curve midpoint (1/bands)**(1/rows) is
    nearest the threshold: pairs above it are very likely to share a band, pairs below unlikely."""
    layouts = [(num_perm // rows, rows) for rows in range(1, num_perm + 1) if num_perm % rows == 0]
    return min(layouts, key=lambda layout: abs((1 / layout[0]) ** (1 / layout[1]) - threshold))


def band_keys(signature, *, bands: int, rows: int) -> list:
    """16 bytes per band: the band's number (4, little-endian), then a 12-byte hash of its rows."""
    return [band.to_bytes(4, "little") + hashlib.blake2b(signature[band * rows:(band + 1) * rows].tobytes(),
                                                         digest_size=12).digest()
            for band in range(bands)]


def estimated_jaccard(first, second) -> float:
    return float(np.mean(np.asarray(first) == np.asarray(second)))


def duplicates_in_band(members, *, threshold: float) -> list:
    """``members``: (id, signature) sharing one band. Returns the positions in ``members`` of those
    that duplicate the member with the smallest id (the first of them, if that id repeats: it is
    kept, and so are its other copies), judged by the full signatures, not just the band. By
    position, not id: of two documents with one id, only the one that is a duplicate goes."""
    by_id = sorted(range(len(members)), key=lambda position: members[position][0])
    kept_id, kept_signature = members[by_id[0]]
    return [position for position in by_id[1:] if members[position][0] != kept_id
            and estimated_jaccard(kept_signature, members[position][1]) >= threshold]
