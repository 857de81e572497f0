"""One bucket from documents to shard bytes (wwm_core.generate), without Beam."""

from wwm_core.config import RunConfig
from wwm_core.generate import ShardMaker
from wwm_core.segmentation import CharSegmenter, JiebaSegmenter
from wwm_core.text import Document


class FailsOnBomb(CharSegmenter):
    """A segmenter that raises on one kind of sentence, as a buggy native segmenter might."""

    def segment(self, sentences):
        if any("💥" in s for s in sentences):
            raise RuntimeError("segmenter crashed")
        return super().segment(sentences)


def _maker(segmenter, vocab, **overrides):
    config = RunConfig(input_patterns=("-",), output="-", **{"dupe_factor": 2, **overrides})
    return ShardMaker(config=config, vocab=vocab, segmenter=segmenter)


DOCS = [Document(f"doc-{i}", ("语言模型很有用。", f"这是第{i}篇文档。")) for i in range(5)]


def test_a_document_the_segmenter_fails_on_is_dead_lettered_not_fatal(bundled_vocab):
    documents = DOCS + [Document("doc-bomb", ("好的。", "这里💥了。"))]
    records, stats, dead_letters = _maker(FailsOnBomb(), bundled_vocab).shard_records(documents, shard_index=0)
    assert [d.id for d in dead_letters] == ["doc-bomb"]
    assert dead_letters[0].reason == "segmenter_error" and "segmenter crashed" in dead_letters[0].detail
    assert stats["documents_out"] == 5 and stats["dead_lettered.segmenter_error"] == 1
    assert len(records) == stats["instances"] > 0


def test_shard_bytes_do_not_depend_on_document_order(bundled_vocab):
    maker = _maker(JiebaSegmenter(), bundled_vocab)
    forward, _, _ = maker.shard_records(DOCS, shard_index=3)
    backward, _, _ = maker.shard_records(list(reversed(DOCS)), shard_index=3)
    assert forward == backward


def test_each_document_is_used_dupe_factor_times(bundled_vocab):
    # One sentence per document and roberta packing: exactly one instance per document and dupe.
    documents = [Document(f"d{i}", ("语言模型很有用。",)) for i in range(7)]
    _, stats, _ = _maker(CharSegmenter(), bundled_vocab, recipe="roberta-wwm-ext",
                         dupe_factor=3).shard_records(documents, shard_index=0)
    assert stats["instances"] == 21
