"""Word vectors for MacBERT benchmarks and checks, where no released embeddings can be downloaded:
PPMI of word co-occurrences (window 2) in jieba-segmented text, reduced by SVD, written in
word2vec's binary format (what `wwm run --similar_words` reads, as it reads the Synonyms
toolkit's and Tencent AI Lab's files). Crude vectors, but real ones: each word's neighbours come
from the text, not from the tool under test.

    .venv/bin/python benchmarks/cooccurrence_vectors.py CORPUS.txt vectors.bin [--dimensions 100]
"""
import argparse
import collections

import jieba
import numpy as np


def cooccurrence_vectors(lines, *, dimensions: int = 100, window: int = 2, min_count: int = 2):
    counts, pairs = collections.Counter(), collections.Counter()
    sentences = [[w for w in jieba.lcut(line.strip()) if w.strip()] for line in lines if line.strip()]
    for words in sentences:
        counts.update(words)
    vocabulary = [w for w, c in counts.most_common() if c >= min_count]
    index = {w: i for i, w in enumerate(vocabulary)}
    for words in sentences:
        ids = [index.get(w, -1) for w in words]
        for i, a in enumerate(ids):
            for b in ids[i + 1:i + 1 + window]:
                if a >= 0 and b >= 0:
                    pairs[a, b] += 1
                    pairs[b, a] += 1
    rows, columns = np.array(list(pairs)).T if pairs else (np.zeros(0, int), np.zeros(0, int))
    values = np.array(list(pairs.values()), np.float64)
    total = values.sum()
    row_sums = np.bincount(rows, weights=values, minlength=len(vocabulary))
    pmi = np.log(values * total / (row_sums[rows] * row_sums[columns]))
    matrix = np.zeros((len(vocabulary), len(vocabulary)), np.float32)
    matrix[rows, columns] = np.maximum(pmi, 0)
    # A randomized SVD (Halko et al. 2011: a range found by two power iterations, then a small SVD):
    # the full SVD of a vocabulary-sized matrix takes minutes.
    take = min(dimensions, len(vocabulary))
    basis = matrix @ np.random.default_rng(0).normal(size=(len(vocabulary), take + 10)).astype(np.float32)
    for _ in range(2):
        basis = matrix @ (matrix.T @ np.linalg.qr(basis)[0])
    basis = np.linalg.qr(basis)[0]
    u, s, _ = np.linalg.svd(basis.T @ matrix, full_matrices=False)
    return vocabulary, ((basis @ u)[:, :take] * np.sqrt(s[:take])).astype(np.float32)


def write_word2vec_binary(path, words, vectors) -> None:
    with open(path, "wb") as out:
        out.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for word, vector in zip(words, vectors):
            out.write(word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("output")
    parser.add_argument("--dimensions", type=int, default=100)
    parser.add_argument("--max_lines", type=int, default=60_000)
    args = parser.parse_args()
    with open(args.corpus, encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(args.max_lines), handle)]
    words, vectors = cooccurrence_vectors(lines, dimensions=args.dimensions)
    write_word2vec_binary(args.output, words, vectors)
    print(f"wrote {len(words)} words x {vectors.shape[1]} dimensions to {args.output}")


if __name__ == "__main__":
    main()
