"""Independent check of masked instances: decodes a run's TFRecords with TensorFlow, segments the
original text of each instance again with jieba (independently of the run's own segmentation) and
measures what masking did to those words.

    .venv/bin/python benchmarks/check_masking.py OUT/seq512 [--similar_words table.tsv]

Prints: instances, masked share of real tokens, whole words (of the jieba words touched by a mask,
the share masked entirely), masked runs (maximal runs of consecutive fully masked jieba words:
mean length in words, share of 3 words or more), the share of predictions fed as [MASK], and per
masked word what it was fed: itself, a candidate of the table (similar) or something else (random).
Only runs of CJK characters that are one token each are segmented (as Google's tokenizer makes
Chinese); a BPE run is checked with --tokenizer (its decoded text, by character offsets).
"""
import argparse
import collections
import json
import os
import re

import jieba
import numpy as np

CJK = re.compile(r"^[\u4e00-\u9fff]$")


def load_table(path):
    table = {}
    if path:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                word, _, candidates = line.rstrip("\n").partition("\t")
                table[word] = set(candidates.split())
    return table


def records(folder):
    import tensorflow as tf

    manifest = json.load(open(os.path.join(folder, "manifest.json"), encoding="utf-8"))
    files = [os.path.join(folder, name) for name in manifest["files"]]
    for raw in tf.data.TFRecordDataset(files):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        yield {name: list(value.int64_list.value or value.float_list.value) for name, value in feature.items()}


def token_texts(folder, tokenizer_path):
    if tokenizer_path:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(tokenizer_path)
        return None, tokenizer
    vocab = [line.rstrip("\n") for line in open(os.path.join(folder, "vocab.txt"), encoding="utf-8")]
    return vocab, None


def tally_words(words, count, runs, fed) -> None:
    """Counts one stretch's words ((per-character or per-token masked flags, what a fully masked
    word was fed), in order): touched and whole words, runs of fully masked words, feeds."""
    word_run = 0
    for hit, kind in words:
        if hit.any():
            count["words_touched"] += 1
            count["words_whole"] += hit.all()
        if hit.all():
            word_run += 1
            fed[kind] += 1
        else:
            if word_run:
                runs[word_run] += 1
            word_run = 0
    if word_run:
        runs[word_run] += 1


def check_bpe_segments(tokenizer, originals, fed_ids, masked, special, count, runs, fed):
    """A tokenizer.json run: each stretch between special tokens decoded to text and encoded again
    (it must give the same ids), each character masked when a masked token covers it; jieba's words
    of that text are then checked like the Chinese characters of a vocab.txt run."""
    stretch = []
    for k in list(range(len(originals))) + [None]:
        if k is not None and originals[k] not in special:
            stretch.append(k)
            continue
        if stretch:
            ids = [originals[j] for j in stretch]
            text = tokenizer.decode(ids)
            encoding = tokenizer.encode(text, add_special_tokens=False)
            if encoding.ids != ids:
                count["stretches_not_round_tripped"] += 1
            else:
                char_masked = np.zeros(len(text), bool)
                char_fed_other = np.zeros(len(text), bool)
                for j, (a, b) in zip(stretch, encoding.offsets):
                    char_masked[a:b] |= masked[j]
                    char_fed_other[a:b] |= fed_ids[j] != originals[j]
                words, at = [], 0
                for word in jieba.lcut(text):
                    span = slice(at, at + len(word))
                    at += len(word)
                    if word.strip():
                        words.append((char_masked[span], "changed" if char_fed_other[span].any() else "kept"))
                tally_words(words, count, runs, fed)
        stretch = []


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--similar_words", help="a table, word<TAB>candidates (the cache a vectors run wrote)")
    parser.add_argument("--tokenizer", help="the run's tokenizer.json (BPE runs)")
    args = parser.parse_args()
    jieba.setLogLevel(60)
    vocab, tokenizer = token_texts(args.folder, args.tokenizer)
    manifest = json.load(open(os.path.join(args.folder, "manifest.json"), encoding="utf-8"))
    special = {v["id"] for v in (manifest.get("special_tokens") or {}).values()} if tokenizer else \
        {i for i, t in enumerate(vocab) if t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]")}
    mask_id = (manifest.get("special_tokens") or {}).get("mask", {}).get("id") if tokenizer else vocab.index("[MASK]")
    table = load_table(args.similar_words)
    count = collections.Counter()
    runs = collections.Counter()
    fed = collections.Counter()
    padding = real_total = 0
    for record in records(args.folder):
        ids = record["input_ids"]
        length = int(sum(record["input_mask"]))
        real_total += length
        padding += len(ids) - length
        weights = record["masked_lm_weights"]
        positions = [p for p, w in zip(record["masked_lm_positions"], weights) if w > 0]
        originals = list(ids)
        for p, m in zip(positions, record["masked_lm_ids"]):
            originals[p] = m
        masked = np.zeros(len(ids), bool)
        masked[positions] = True
        count["instances"] += 1
        count["tokens"] += length
        count["masked"] += len(positions)
        fed["[MASK]"] += sum(ids[p] == mask_id for p in positions)
        if tokenizer:  # text between special tokens, re-encoded for each character's token
            check_bpe_segments(tokenizer, originals[:length], ids[:length], masked[:length], special, count, runs, fed)
            continue
        pieces = [vocab[t] if t not in special else None for t in originals[:length]]
        # Runs of tokens that are one CJK character each.
        run = []
        for k in list(range(length)) + [None]:
            if k is not None and pieces[k] is not None and CJK.match(pieces[k]):
                run.append(k)
                continue
            if len(run) >= 2:
                text = "".join(pieces[j] for j in run)
                words, at = [], 0
                for word in jieba.lcut(text):
                    members = run[at:at + len(word)]
                    at += len(word)
                    given = "".join(vocab[ids[j]] for j in members)
                    kind = "kept" if given == word else "similar" if given in table.get(word, ()) else "random"
                    words.append((masked[members], kind))
                tally_words(words, count, runs, fed)
            run = []
    total_runs = sum(runs.values())
    words_fed = fed["kept"] + fed["similar"] + fed["random"] + fed["changed"]
    print(f"instances {count['instances']:,}, real tokens {count['tokens']:,}, padding share "
          f"{padding / (padding + real_total):.4f}")
    print(f"masked share {count['masked'] / count['tokens']:.4f}")
    print(f"whole words: {count['words_whole'] / max(1, count['words_touched']):.4f} of {count['words_touched']:,} "
          "jieba words touched by a mask")
    print(f"masked runs: {total_runs:,}, mean {sum(k * n for k, n in runs.items()) / max(1, total_runs):.3f} words, "
          f"3 words or more {sum(n for k, n in runs.items() if k >= 3) / max(1, total_runs):.3f}; shares "
          + ", ".join(f"{k}: {runs[k] / max(1, total_runs):.3f}" for k in sorted(runs) if k <= 6))
    print(f"[MASK] on {fed['[MASK]'] / max(1, count['masked']):.4f} of predictions")
    if tokenizer:
        print(f"fully masked words fed something else: {fed['changed'] / max(1, words_fed):.3f}, themselves "
              f"{fed['kept'] / max(1, words_fed):.3f}; stretches that did not round-trip through the tokenizer: "
              f"{count['stretches_not_round_tripped']}")
        return
    print(f"fully masked words fed: similar {fed['similar'] / max(1, words_fed):.3f}, random "
          f"{fed['random'] / max(1, words_fed):.3f}, kept {fed['kept'] / max(1, words_fed):.3f} "
          f"({words_fed:,} words{'' if table else '; no table given: similar words count as random'})")


if __name__ == "__main__":
    main()
