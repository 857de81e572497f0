"""Long instances packed across documents (``--pack_across_documents``, ``--pack_fill``): every
token once, in order; where each document starts (``document_starts``, Parquet ``document_ids``);
little padding at 1,024 to 8,192 tokens."""
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import ud_sentences
from tests.test_pipeline import run_wwm
from wwm_core.config import Phase
from wwm_core.instances import (SpecialIds, TokenPool, drop_leading_separators, filled_plans, make_batch, packed_pool,
                                plan_matrix, single_segment_plans, with_documents)

SPECIAL = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)


def pool_of(documents):
    total = sum(map(sum, documents))
    return TokenPool(ids=np.arange(1000, 1000 + total, dtype=np.int32), group_start=np.ones(total, bool),
                     doc_offsets=np.cumsum([0] + [sum(d) for d in documents]))


@settings(max_examples=80, deadline=None)
@given(documents=st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=6), min_size=1, max_size=12),
       fill=st.sampled_from(["sentences", "tokens"]), length=st.sampled_from([16, 40, 128]), seed=st.integers(0, 99))
def test_document_starts_are_one_past_each_separator_inside(documents, fill, length, seed):
    pool = pool_of(documents)
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    stream, lengths = packed_pool(pool, documents, order, special=SPECIAL)
    phase = Phase(max_seq_length=length, max_predictions_per_seq=max(1, length // 6))
    rng = random.Random(seed)
    plans = (filled_plans(stream, rng=rng, phase=phase) if fill == "tokens" else
             drop_leading_separators(single_segment_plans([lengths], 0, rng=rng, phase=phase), stream, special=SPECIAL))
    fields = plan_matrix(plans)
    batch = with_documents(make_batch(fields, stream, special=SPECIAL, phase=phase, masked_lm_prob=0.15,
                                      masking="dynamic"), fields, stream)
    content = []
    for row in range(len(plans)):
        ids = batch.input_ids[row, :batch.lengths[row]].tolist()
        assert len(ids) <= length and ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep
        assert ids[1] != SPECIAL.sep and ids[-2] != SPECIAL.sep, "no separator next to [CLS] or the final [SEP]"
        inner = [k + 1 for k, token in enumerate(ids[:-1]) if token == SPECIAL.sep and k > 0]
        starts = batch.document_starts[row].tolist()
        assert starts == [0] + inner + [0] * (length // 2 - 1 - len(inner))
        documents_here = batch.document_ids[row, :batch.lengths[row]]
        assert documents_here[0] == 1 and np.all(np.diff(documents_here) >= 0)
        assert np.flatnonzero(np.diff(documents_here)).tolist() == [s - 1 for s in inner]
        assert not batch.document_ids[row, batch.lengths[row]:].any()
        content += [t for t in ids[1:-1] if t != SPECIAL.sep]
    expected = [t for d in order for t in pool.ids[pool.doc_offsets[d]:pool.doc_offsets[d + 1]].tolist()]
    assert content == expected, "every token once, in the stream's order"
    if fill == "tokens":
        short = [row for row in range(len(plans) - 1) if batch.lengths[row] < length - 1]
        assert not short, "filled instances lose at most the one token of a separator they start or end with"


def test_long_packed_phases_from_one_run(tmp_path):
    sentences = ud_sentences("dev") + ud_sentences("test")
    documents, at = [], 0
    rng = random.Random(0)
    while at < len(sentences):
        size = rng.randint(3, 12)
        documents.append(sentences[at:at + size])
        at += size
    manifest = run_wwm(tmp_path, "--max_seq_length=1024,2048,4096,8192", "--sentence_task=none",
                       "--pack_across_documents", "--pack_fill=tokens", "--num_shards=1", "--dupe_factor=2",
                       "--output_format=both", inputs=[str(write(tmp_path / "ud.txt", documents))])
    tf = pytest.importorskip("tensorflow")
    for length, predictions in ((1024, 155), (2048, 310), (4096, 615), (8192, 1230)):
        phase = __import__("json").loads((tmp_path / "out" / f"seq{length}" / "manifest.json").read_text())
        assert phase["max_predictions_per_seq"] == predictions and "document_starts" in phase["features"]
        if length == 1024:
            assert phase["statistics"]["padding_share"] <= 0.02, phase["statistics"]
        spec = {"input_ids": tf.io.FixedLenFeature([length], tf.int64),
                "input_mask": tf.io.FixedLenFeature([length], tf.int64),
                "document_starts": tf.io.FixedLenFeature([length // 2], tf.int64)}
        files = [str(tmp_path / "out" / f"seq{length}" / name) for name in phase["files"]]
        for record in tf.data.TFRecordDataset(files):
            parsed = tf.io.parse_single_example(record, spec)
            starts = parsed["document_starts"].numpy()
            live = starts[1:][starts[1:] > 0]
            assert starts[0] == 0 and np.all(np.diff(live) > 0) and (live < parsed["input_mask"].numpy().sum()).all()
    assert manifest["kind"] == "phases" and len(manifest["phases"]) == 4


def write(path, documents):
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    return path
