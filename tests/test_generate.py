"""One bucket from documents to instances (wwm_core.generate), without Beam."""
import collections

from wwm_core.config import OutputConfig, instances_from_recipe
from wwm_core.generate import ShardMaker
from wwm_core.segmentation import CharSegmenter, JiebaSegmenter
from wwm_core.text import Document
from wwm_core.stats import Stats


class FailsOnBomb(CharSegmenter):
    """A segmenter that raises on one kind of sentence, as a buggy native segmenter might."""

    def segment(self, sentences):
        if any("💥" in s for s in sentences):
            raise RuntimeError("segmenter crashed")
        return super().segment(sentences)


def _maker(segmenter, vocab, recipe="bert-wwm", output_format="tfrecord", **overrides):
    instances = instances_from_recipe(recipe, **{"dupe_factor": 2, "max_seq_lengths": (128,), **overrides})
    return ShardMaker(instances=instances, output=OutputConfig(path="-", output_format=output_format), vocab=vocab,
                      segmenter=segmenter, max_document_chars=1_000_000)


def _shard(maker, documents, shard_index=0):
    """(TFRecord bytes per phase, stats, dead letters)."""
    stats, dead_letters, data = Stats(), [], collections.defaultdict(bytes)
    for phase, batch in maker.instance_batches(documents, shard_index=shard_index, stats=stats,
                                               dead_letters=dead_letters):
        data[phase.max_seq_length] += maker.tfrecord_bytes(batch, phase)[0]
    return dict(data), stats, dead_letters


DOCS = [Document(f"doc-{i}", ("语言模型很有用。", f"这是第{i}篇文档。")) for i in range(5)]


def test_a_document_the_segmenter_fails_on_is_dead_lettered_not_fatal(bundled_vocab):
    documents = DOCS + [Document("doc-bomb", ("好的。", "这里💥了。"))]
    data, stats, dead_letters = _shard(_maker(FailsOnBomb(), bundled_vocab), documents)
    assert [d.id for d in dead_letters] == ["doc-bomb"]
    assert dead_letters[0].reason == "segmenter_error" and "segmenter crashed" in dead_letters[0].detail
    assert stats["documents_out"] == 5 and stats["dead_lettered.segmenter_error"] == 1
    assert stats["phase.128.instances"] > 0 and data[128]


def test_a_repeated_document_id_is_dead_lettered_once_not_fatal(bundled_vocab):
    _, stats, dead_letters = _shard(_maker(CharSegmenter(), bundled_vocab), DOCS + [DOCS[0]])
    assert [(d.id, d.reason) for d in dead_letters] == [("doc-0", "duplicate_document_id")]
    assert stats["documents_out"] == 5 and stats["dead_lettered.duplicate_document_id"] == 1


def test_shard_bytes_do_not_depend_on_document_order(bundled_vocab):
    maker = _maker(JiebaSegmenter(), bundled_vocab)
    forward, _, _ = _shard(maker, DOCS, shard_index=3)
    backward, _, _ = _shard(maker, list(reversed(DOCS)), shard_index=3)
    assert forward == backward


def test_each_document_is_used_dupe_factor_times(bundled_vocab):
    # One sentence per document and one segment per instance: one instance per document and dupe.
    documents = [Document(f"d{i}", ("语言模型很有用。",)) for i in range(7)]
    maker = _maker(CharSegmenter(), bundled_vocab, recipe="roberta-wwm-ext", sentence_task="none",
                   paired_input=False, dupe_factor=3)
    _, stats, _ = _shard(maker, documents)
    assert stats["phase.128.instances"] == 21


def test_each_phase_equals_a_run_of_that_length_alone(bundled_vocab):
    documents = [Document(f"d{i}", tuple(f"第{i}篇文档的第{s}句话讲述了语言模型和全词掩码。" for s in range(12)))
                 for i in range(6)]
    both, _, _ = _shard(_maker(JiebaSegmenter(), bundled_vocab, max_seq_lengths=(128, 512)), documents)
    short, _, _ = _shard(_maker(JiebaSegmenter(), bundled_vocab, max_seq_lengths=(128,)), documents)
    long, _, _ = _shard(_maker(JiebaSegmenter(), bundled_vocab, max_seq_lengths=(512,)), documents)
    assert both == {**short, **long} and set(both) == {128, 512}
