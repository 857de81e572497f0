"""The hand-written tf.train.Example / TFRecord bytes: equal to protobuf's own serialization, parsed
by TensorFlow into exactly the features Google's run_pretraining.py reads."""
import io
import random

import numpy as np
import pytest

from tests.conftest import google_run_pretraining_features
from wwm_core.instances import InstanceBatch
from wwm_core.records import (ExampleEncoder, decode_example, decoded_instance, feature_lengths, read_tfrecords,
                              schema)

tf = pytest.importorskip("tensorflow")

SEQ, PRED, VOCAB_SIZE = 32, 5, 21128

GOOGLE_RUN_PRETRAINING_FEATURES = google_run_pretraining_features(SEQ, PRED)


def tensorflow_framed(records, folder) -> bytes:
    """The records as TensorFlow's own TFRecordWriter frames them."""
    path = folder / "tensorflow.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path.read_bytes()


def random_batch(rng, rows, *, masked=True):
    lengths = np.array([rng.randint(5, SEQ) for _ in range(rows)])
    ids = np.zeros((rows, SEQ), np.int32)
    segments = np.zeros((rows, SEQ), np.uint8)
    word_ids = np.zeros((rows, SEQ), np.int32)
    positions = np.zeros((rows, PRED), np.int32)
    labels = np.zeros((rows, PRED), np.int32)
    counts = np.zeros(rows, np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = [101] + [rng.randrange(VOCAB_SIZE) for _ in range(length - 2)] + [102]
        segments[row, rng.randint(1, length - 1):length] = 1
        word_ids[row, 1:length - 1] = np.cumsum([rng.random() < 0.6 for _ in range(length - 2)]) + 1
        chosen = sorted(rng.sample(range(1, length - 1), min(PRED, length - 2, rng.randint(0, PRED))))
        counts[row] = len(chosen)
        positions[row, :len(chosen)] = chosen
        labels[row, :len(chosen)] = [rng.randrange(VOCAB_SIZE) for _ in chosen]
    nsp = np.array([rng.random() < 0.5 for _ in range(rows)], dtype=np.uint8)
    if not masked:
        return InstanceBatch(ids, lengths, segments, nsp, word_ids)
    return InstanceBatch(ids, lengths, segments, nsp, word_ids, positions, labels, counts)


def protobuf_example(batch, row, features) -> bytes:
    """The same row built as a tf.train.Example by TensorFlow, serialized deterministically."""
    n, m = batch.lengths[row], (batch.num_masked[row] if batch.num_masked is not None else 0)
    values = {
        "input_ids": batch.input_ids[row].tolist(),
        "input_mask": [1] * n + [0] * (SEQ - n),
        "segment_ids": batch.segment_ids[row].tolist(),
        "next_sentence_labels": [int(batch.labels[row])],
        "word_ids": batch.word_ids[row].tolist(),
    }
    if batch.num_masked is not None:
        values.update(masked_lm_positions=batch.masked_positions[row].tolist(),
                      masked_lm_ids=batch.masked_ids[row].tolist(), masked_lm_weights=[1.0] * m + [0.0] * (PRED - m))
    feature = {}
    for f in features:
        if f.dtype == "float":
            feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=values[f.name]))
        else:
            feature[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values[f.name]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_encoder_bytes_equal_protobufs_deterministic_serialization(masking):
    features = schema(masking)
    encoder = ExampleEncoder(features, max_seq_length=SEQ, max_predictions_per_seq=PRED, vocab_size=VOCAB_SIZE)
    batch = random_batch(random.Random(7), 300, masked=masking == "static")
    encoded = encoder.encode_batch(batch)
    for row in range(len(batch)):
        assert encoded[row] == protobuf_example(batch, row, features), row


def test_static_records_hold_exactly_what_googles_run_pretraining_reads(tmp_path):
    features = schema("static")
    lengths = feature_lengths(features, max_seq_length=SEQ, max_predictions_per_seq=PRED)
    dtypes = {"int64": tf.int64, "float": tf.float32}
    ours = {f.name: tf.io.FixedLenFeature([lengths[f.name]], dtypes[f.dtype]) for f in features}
    assert ours == GOOGLE_RUN_PRETRAINING_FEATURES

    encoder = ExampleEncoder(features, max_seq_length=SEQ, max_predictions_per_seq=PRED, vocab_size=VOCAB_SIZE)
    batch = random_batch(random.Random(0), 200)
    path = tmp_path / "shard.tfrecord"
    framed, ends = encoder.frames(batch)  # the bytes a shard file holds
    path.write_bytes(framed)
    assert framed == tensorflow_framed(encoder.encode_batch(batch), tmp_path)
    assert ends[-1] == len(framed)
    records = list(tf.data.TFRecordDataset([str(path)]))  # checks the CRCs too
    assert len(records) == len(batch)
    for row, record in enumerate(records):
        parsed = tf.io.parse_single_example(record, GOOGLE_RUN_PRETRAINING_FEATURES)
        example = tf.train.Example.FromString(record.numpy())
        assert set(example.features.feature) == set(GOOGLE_RUN_PRETRAINING_FEATURES), "no feature more or less"
        n, m = batch.lengths[row], batch.num_masked[row]
        assert parsed["input_ids"].numpy().tolist() == batch.input_ids[row].tolist()
        assert parsed["input_mask"].numpy().tolist() == [1] * n + [0] * (SEQ - n)
        assert parsed["segment_ids"].numpy().tolist() == batch.segment_ids[row].tolist()
        assert parsed["masked_lm_positions"].numpy().tolist() == batch.masked_positions[row].tolist()
        assert parsed["masked_lm_ids"].numpy().tolist() == batch.masked_ids[row].tolist()
        assert parsed["masked_lm_weights"].numpy().tolist() == [1.0] * m + [0.0] * (PRED - m)
        assert parsed["next_sentence_labels"].numpy().tolist() == [int(batch.labels[row])]
        # Our decoder (wwm inspect) agrees with TensorFlow.
        decoded = decoded_instance(decode_example(record.numpy()))
        assert decoded.input_ids == batch.input_ids[row, :n].tolist()
        assert decoded.masked_ids == batch.masked_ids[row, :m].tolist()
        assert decoded.next_sentence_label == int(batch.labels[row])


def test_dynamic_records_carry_word_ids_and_no_masks(tmp_path):
    spec = {"input_ids": tf.io.FixedLenFeature([SEQ], tf.int64), "input_mask": tf.io.FixedLenFeature([SEQ], tf.int64),
            "segment_ids": tf.io.FixedLenFeature([SEQ], tf.int64), "word_ids": tf.io.FixedLenFeature([SEQ], tf.int64),
            "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64)}
    features = schema("dynamic")
    encoder = ExampleEncoder(features, max_seq_length=SEQ, max_predictions_per_seq=PRED, vocab_size=VOCAB_SIZE)
    batch = random_batch(random.Random(1), 50, masked=False)
    for row, record in enumerate(encoder.encode_batch(batch)):
        example = tf.train.Example.FromString(record)
        assert set(example.features.feature) == set(spec)
        parsed = tf.io.parse_single_example(record, spec)
        assert parsed["word_ids"].numpy().tolist() == batch.word_ids[row].tolist()


def test_our_decoder_reads_what_tensorflow_writes(tmp_path):
    example = tf.train.Example(features=tf.train.Features(feature={
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[101, 21127, 102, 0])),
        "input_mask": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 1, 1, 0])),
        "segment_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[0, 0, 0, 0])),
        "masked_lm_positions": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 0])),
        "masked_lm_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[777, 0])),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 0.0])),
        "next_sentence_labels": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
    }))
    (record,) = list(read_tfrecords(io.BytesIO(tensorflow_framed([example.SerializeToString()], tmp_path))))
    decoded = decoded_instance(decode_example(record))
    assert decoded.input_ids == [101, 21127, 102]
    assert decoded.masked_positions == [1] and decoded.masked_ids == [777]
    assert decoded.next_sentence_label == 1


def test_our_reader_reads_what_tensorflow_frames_and_detects_corruption(tmp_path):
    records = [b"", b"a", b"hello", b"hello", b"x" * 300]
    assert list(read_tfrecords(io.BytesIO(tensorflow_framed(records, tmp_path)))) == records

    framed = bytearray(tensorflow_framed([b"hello"], tmp_path))
    framed[14] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        list(read_tfrecords(io.BytesIO(bytes(framed))))
    with pytest.raises(ValueError, match="truncated"):
        list(read_tfrecords(io.BytesIO(tensorflow_framed([b"hello"], tmp_path)[:-2])))
