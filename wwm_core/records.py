"""The output schema, and tf.train.Example / TFRecord bytes written and read without TensorFlow.

``FEATURES`` is the one definition of the schema: the writer below, ``wwm inspect``, the tests'
TensorFlow parse and the trainer all derive from it. Encoding by hand (protobuf wire format is
simple) keeps TensorFlow off the pipeline workers and avoids building one protobuf object per
instance in the hot path.
"""
import dataclasses
import struct

import google_crc32c
import numpy as np

# name -> (dtype, length source); "seq" = max_seq_length, "pred" = max_predictions_per_seq.
FEATURES = {
    "input_ids": ("int64", "seq"),
    "input_mask": ("int64", "seq"),
    "segment_ids": ("int64", "seq"),
    "masked_lm_positions": ("int64", "pred"),
    "masked_lm_ids": ("int64", "pred"),
    "masked_lm_weights": ("float", "pred"),
    "next_sentence_labels": ("int64", 1),
}


def feature_lengths(*, max_seq_length: int, max_predictions_per_seq: int) -> dict:
    sizes = {"seq": max_seq_length, "pred": max_predictions_per_seq}
    return {name: sizes.get(length, length) for name, (_, length) in FEATURES.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


_INT64_LIST, _FLOAT_LIST = 3, 2  # tf.train.Feature's oneof field numbers


class ExampleEncoder:
    """Serializes instances to ``tf.train.Example`` bytes for one (seq length, predictions) shape."""

    def __init__(self, *, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int):
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        # Every id and position is below this bound; their varints are looked up, not computed.
        self._varints = [_varint(i) for i in range(max(vocab_size, 16 * max_seq_length) + 1)]
        self._keys = {name: _len_delimited(1, name.encode()) for name in FEATURES}

    def _len(self, length: int) -> bytes:
        return self._varints[length] if length < len(self._varints) else _varint(length)

    def _entry(self, name: str, kind: int, payload: bytes) -> bytes:
        # Nested length-delimited messages: Features.feature map entry {key, value: Feature
        # {int64_list|float_list {packed value}}}. Written out by hand: this runs per instance.
        varint_len = self._len
        value_list = b"\x0a" + varint_len(len(payload)) + payload
        feature = bytes((kind << 3 | 2,)) + varint_len(len(value_list)) + value_list
        key = self._keys[name]
        entry = key + b"\x12" + varint_len(len(feature)) + feature
        return b"\x0a" + varint_len(len(entry)) + entry

    def _ints(self, values) -> bytes:
        return b"".join(map(self._varints.__getitem__, values))

    def encode(self, instance) -> bytes:
        seq, pred = self.max_seq_length, self.max_predictions_per_seq
        num_tokens, num_masked = len(instance.input_ids), len(instance.masked_positions)
        padding = seq - num_tokens
        pred_padding = pred - num_masked
        zeros = b"\x00" * max(padding, pred_padding)
        # 0/1 values are one varint byte each, so the mask and segments are their own bytes.
        input_mask = b"\x01" * num_tokens + zeros[:padding]
        segment_ids = instance.segment_ids.tobytes() + zeros[:padding]
        weights = np.zeros(pred, "<f4")
        weights[:num_masked] = 1.0
        features = (
            self._entry("input_ids", _INT64_LIST, self._ints(instance.input_ids.tolist()) + zeros[:padding])
            + self._entry("input_mask", _INT64_LIST, input_mask)
            + self._entry("segment_ids", _INT64_LIST, segment_ids)
            + self._entry("masked_lm_positions", _INT64_LIST,
                          self._ints(instance.masked_positions.tolist()) + zeros[:pred_padding])
            + self._entry("masked_lm_ids", _INT64_LIST,
                          self._ints(instance.masked_labels.tolist()) + zeros[:pred_padding])
            + self._entry("masked_lm_weights", _FLOAT_LIST, weights.tobytes())
            + self._entry("next_sentence_labels", _INT64_LIST, b"\x01" if instance.is_random_next else b"\x00")
        )
        return _len_delimited(1, features)


# ---- TFRecord framing: length, masked crc32c of length, data, masked crc32c of data ----

def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + _masked_crc(length) + record + _masked_crc(record)


def read_tfrecords(stream):
    """Yields the records of a TFRecord stream, checking both checksums."""
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) < 12:
            raise ValueError("truncated TFRecord header")
        length_bytes, length_crc = header[:8], header[8:]
        if _masked_crc(length_bytes) != length_crc:
            raise ValueError("corrupt TFRecord: length checksum mismatch")
        (length,) = struct.unpack("<Q", length_bytes)
        record = stream.read(length)
        footer = stream.read(4)
        if len(record) < length or len(footer) < 4:
            raise ValueError("truncated TFRecord")
        if _masked_crc(record) != footer:
            raise ValueError("corrupt TFRecord: data checksum mismatch")
        yield record


# ---- Decoding tf.train.Example without TensorFlow (for `wwm inspect`) ----

def _read_varint(data: bytes, pos: int):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of a message; length-delimited values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire_type == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire_type == 1:
            value, pos = data[pos : pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield field, wire_type, value


def decode_example(data: bytes) -> dict:
    """tf.train.Example bytes -> {feature name: list of ints or floats}."""
    features = {}
    for _, _, features_message in _fields(data):
        for _, _, entry in _fields(features_message):
            name, values = None, []
            for field, _, value in _fields(entry):
                if field == 1:
                    name = value.decode()
                elif field == 2:
                    values = _decode_feature(value)
            features[name] = values
    return features


def _decode_feature(feature: bytes) -> list:
    values = []
    for kind, _, value_list in _fields(feature):
        for _, wire_type, value in _fields(value_list):
            if kind == _INT64_LIST:
                if wire_type == 2:  # packed
                    pos = 0
                    while pos < len(value):
                        number, pos = _read_varint(value, pos)
                        values.append(number)
                else:
                    values.append(value)
            elif kind == _FLOAT_LIST:
                values.extend(struct.unpack(f"<{len(value) // 4}f", value))  # packed or single
            else:
                raise ValueError("bytes features are not part of the schema")
    return values


@dataclasses.dataclass(frozen=True)
class DecodedInstance:
    input_ids: list
    segment_ids: list
    masked_positions: list
    masked_ids: list
    next_sentence_label: int


def decoded_instance(example: dict) -> DecodedInstance:
    length = sum(example["input_mask"])
    num_masked = int(sum(example["masked_lm_weights"]))
    return DecodedInstance(
        input_ids=example["input_ids"][:length],
        segment_ids=example["segment_ids"][:length],
        masked_positions=example["masked_lm_positions"][:num_masked],
        masked_ids=example["masked_lm_ids"][:num_masked],
        next_sentence_label=example["next_sentence_labels"][0],
    )
