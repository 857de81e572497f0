"""The hand-written tf.train.Example / TFRecord bytes parse with TensorFlow into the schema."""
import io
import random

import numpy as np
import pytest

from wwm_core.instances import MaskedBatch
from wwm_core.records import (FEATURES, ExampleEncoder, decode_example, decoded_instance, feature_lengths,
                              read_tfrecords, tfrecord_frame, tfrecord_frames)

tf = pytest.importorskip("tensorflow")

SEQ, PRED, VOCAB_SIZE = 32, 5, 21128


def feature_spec():
    """The TensorFlow parsing spec, derived from the one schema definition."""
    dtypes = {"int64": tf.int64, "float": tf.float32}
    lengths = feature_lengths(max_seq_length=SEQ, max_predictions_per_seq=PRED)
    return {name: tf.io.FixedLenFeature([lengths[name]], dtypes[dtype]) for name, (dtype, _) in FEATURES.items()}


def random_batch(rng, rows):
    lengths = np.array([rng.randint(5, SEQ) for _ in range(rows)])
    ids = np.zeros((rows, SEQ), np.int32)
    segments = np.zeros((rows, SEQ), np.uint8)
    positions = np.zeros((rows, PRED), np.int32)
    labels = np.zeros((rows, PRED), np.int32)
    counts = np.zeros(rows, np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = [101] + [rng.randrange(VOCAB_SIZE) for _ in range(length - 2)] + [102]
        segments[row, rng.randint(1, length - 1):length] = 1
        chosen = sorted(rng.sample(range(1, length - 1), min(PRED, length - 2, rng.randint(0, PRED))))
        counts[row] = len(chosen)
        positions[row, :len(chosen)] = chosen
        labels[row, :len(chosen)] = [rng.randrange(VOCAB_SIZE) for _ in chosen]
    nsp = np.array([rng.random() < 0.5 for _ in range(rows)])
    return MaskedBatch(ids, lengths, segments, positions, labels, counts, nsp)


def test_tensorflow_parses_every_feature(tmp_path):
    encoder = ExampleEncoder(max_seq_length=SEQ, max_predictions_per_seq=PRED, vocab_size=VOCAB_SIZE)
    batch = random_batch(random.Random(0), 200)
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(b"".join(tfrecord_frame(e) for e in encoder.encode_batch(batch)))

    parsed = [tf.io.parse_single_example(record, feature_spec())
              for record in tf.data.TFRecordDataset([str(path)])]  # checks the CRCs too
    assert len(parsed) == len(batch)
    for row, features in enumerate(parsed):
        n, m = batch.lengths[row], batch.num_masked[row]
        assert features["input_ids"].numpy().tolist() == batch.input_ids[row].tolist()
        assert features["input_mask"].numpy().tolist() == [1] * n + [0] * (SEQ - n)
        assert features["segment_ids"].numpy().tolist() == batch.segment_ids[row].tolist()
        assert features["masked_lm_positions"].numpy().tolist() == batch.masked_positions[row].tolist()
        assert features["masked_lm_ids"].numpy().tolist() == batch.masked_ids[row].tolist()
        assert features["masked_lm_weights"].numpy().tolist() == [1.0] * m + [0.0] * (PRED - m)
        assert features["next_sentence_labels"].numpy().tolist() == [int(batch.is_random_next[row])]
    # Our own decoder (used by `wwm inspect`) agrees with TensorFlow.
    for row, record in enumerate(read_tfrecords(io.BytesIO(path.read_bytes()))):
        decoded = decoded_instance(decode_example(record))
        assert decoded.input_ids == batch.input_ids[row, :batch.lengths[row]].tolist()
        assert decoded.masked_ids == batch.masked_ids[row, :batch.num_masked[row]].tolist()
        assert decoded.next_sentence_label == int(batch.is_random_next[row])


def test_our_decoder_reads_what_tensorflow_writes():
    example = tf.train.Example(features=tf.train.Features(feature={
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[101, 21127, 102, 0])),
        "input_mask": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 1, 1, 0])),
        "segment_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[0, 0, 0, 0])),
        "masked_lm_positions": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 0])),
        "masked_lm_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[777, 0])),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 0.0])),
        "next_sentence_labels": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
    }))
    stream = io.BytesIO(tfrecord_frame(example.SerializeToString()))
    (record,) = list(read_tfrecords(stream))
    decoded = decoded_instance(decode_example(record))
    assert decoded.input_ids == [101, 21127, 102]
    assert decoded.masked_positions == [1] and decoded.masked_ids == [777]
    assert decoded.next_sentence_label == 1


def test_corrupt_records_are_detected():
    framed = bytearray(tfrecord_frame(b"hello"))
    framed[14] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        list(read_tfrecords(io.BytesIO(bytes(framed))))
    with pytest.raises(ValueError, match="truncated"):
        list(read_tfrecords(io.BytesIO(tfrecord_frame(b"hello")[:-2])))


def test_batched_framing_equals_one_by_one():
    records = [b"", b"a", b"hello", b"hello", b"x" * 300]
    assert tfrecord_frames(records) == [tfrecord_frame(r) for r in records]
