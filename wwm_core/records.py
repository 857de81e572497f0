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


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_SMALL_VARINTS = [_encode_varint(i) for i in range(1 << 14)]  # every length an Example field has


def _varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 1 << 14 else _encode_varint(value)


def _len_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


_INT64_LIST, _FLOAT_LIST = 3, 2  # tf.train.Feature's oneof field numbers


def _varint_rows(matrix: np.ndarray):
    """Varint bytes of every value of a non-negative (n, w) matrix (values < 2**21), and the
    byte offset of each row's encoding in them: rows are encoded all at once, not value by value."""
    values = matrix.astype(np.uint32)
    num_bytes = 1 + (values >= 1 << 7) + (values >= 1 << 14)
    encoded = np.empty(values.shape + (3,), dtype=np.uint8)
    encoded[..., 0] = (values & 0x7F) | ((values >= 1 << 7) << 7)
    encoded[..., 1] = ((values >> 7) & 0x7F) | ((values >= 1 << 14) << 7)
    encoded[..., 2] = values >> 14
    keep = np.arange(3) < num_bytes[..., None]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(num_bytes.sum(axis=1), out=offsets[1:])
    return encoded[keep].tobytes(), offsets.tolist()


class ExampleEncoder:
    """Serializes batches of instances to ``tf.train.Example`` bytes for one shape."""

    def __init__(self, *, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int):
        if vocab_size >= 1 << 21:
            raise ValueError("vocabularies of 2**21 tokens or more are not supported")
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        self._keys = {name: _len_delimited(1, name.encode()) for name in FEATURES}
        self._headers = {}

    def _entry(self, name: str, kind: int, payload: bytes) -> bytes:
        # Features.feature map entry {key, value: Feature {int64_list|float_list {packed value}}}.
        value_list = b"\x0a" + _varint(len(payload)) + payload
        feature = bytes((kind << 3 | 2,)) + _varint(len(value_list)) + value_list
        entry = self._keys[name] + b"\x12" + _varint(len(feature)) + feature
        return b"\x0a" + _varint(len(entry)) + entry

    def _header(self, name: str, kind: int, payload_length: int) -> bytes:
        """Everything of a feature's map entry before its payload; cached, as it depends only on
        the payload's length."""
        key = (name, payload_length)
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = self._entry(name, kind, b"\x00" * payload_length)[:-payload_length or None]
        return header

    def encode_batch(self, batch) -> list:
        """A ``MaskedBatch`` -> one serialized Example per row."""
        seq, pred = self.max_seq_length, self.max_predictions_per_seq
        column = np.arange(seq)[None, :]
        ids_bytes, ids_at = _varint_rows(batch.input_ids)
        positions_bytes, positions_at = _varint_rows(batch.masked_positions)
        labels_bytes, labels_at = _varint_rows(batch.masked_ids)
        # 0/1 values are one varint byte each: the mask and segment rows are their own bytes.
        mask_bytes = (column < batch.lengths[:, None]).astype(np.uint8).tobytes()
        segment_bytes = batch.segment_ids.astype(np.uint8).tobytes()
        weights_bytes = (np.arange(pred)[None, :] < batch.num_masked[:, None]).astype("<f4").tobytes()
        header = self._header
        mask_header = header("input_mask", _INT64_LIST, seq)
        segment_header = header("segment_ids", _INT64_LIST, seq)
        weights_header = header("masked_lm_weights", _FLOAT_LIST, 4 * pred)
        nsp = [self._entry("next_sentence_labels", _INT64_LIST, b"\x00"),
               self._entry("next_sentence_labels", _INT64_LIST, b"\x01")]
        random_next = batch.is_random_next.tolist()
        examples = []
        for row in range(len(batch)):
            ids_start, ids_end = ids_at[row], ids_at[row + 1]
            positions_start, positions_end = positions_at[row], positions_at[row + 1]
            labels_start, labels_end = labels_at[row], labels_at[row + 1]
            features = b"".join((
                header("input_ids", _INT64_LIST, ids_end - ids_start), ids_bytes[ids_start:ids_end],
                mask_header, mask_bytes[row * seq:(row + 1) * seq],
                segment_header, segment_bytes[row * seq:(row + 1) * seq],
                header("masked_lm_positions", _INT64_LIST, positions_end - positions_start),
                positions_bytes[positions_start:positions_end],
                header("masked_lm_ids", _INT64_LIST, labels_end - labels_start), labels_bytes[labels_start:labels_end],
                weights_header, weights_bytes[row * 4 * pred:(row + 1) * 4 * pred],
                nsp[random_next[row]],
            ))
            examples.append(b"\x0a" + _varint(len(features)) + features)
        return examples


# ---- TFRecord framing: length, masked crc32c of length, data, masked crc32c of data ----

def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + _masked_crc(length) + record + _masked_crc(record)


def tfrecord_frames(records: list) -> list:
    """``tfrecord_frame`` of many records; the length header is computed once per length."""
    headers, framed = {}, []
    for record in records:
        header = headers.get(len(record))
        if header is None:
            length = struct.pack("<Q", len(record))
            header = headers[len(record)] = length + _masked_crc(length)
        framed.append(header + record + _masked_crc(record))
    return framed


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
