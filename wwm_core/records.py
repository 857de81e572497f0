"""The output schema, and the bytes of tf.train.Example records and TFRecord files.

``SCHEMAS`` is the one definition of the output: every encoder and decoder (the TFRecord writer
below, the Parquet writer, ``wwm inspect``, the trainer's tf.data parser) takes feature names,
kinds and lengths from it. Static masking writes exactly the features Google's
``run_pretraining.py`` reads; dynamic masking writes unmasked instances with ``word_ids`` (each
token's whole-word group) so the trainer can draw new masks every epoch.

Encoding by hand (protobuf's wire format is simple) keeps TensorFlow off the pipeline workers and
avoids building one protobuf object per instance in the hot path (the compiled
``kernels.frame_examples`` writes the bytes); features are written in key order, so the bytes
equal protobuf's deterministic serialization. Decoding, off the hot path, uses
the protobuf library with tf.train.Example's message definition (see ``example_message``).
"""
import dataclasses
import struct

import google_crc32c
import numpy as np

from wwm_core import kernels

SEQ, PRED, HALF_SEQ = "seq", "pred", "half_seq"  # lengths: max_seq_length, max_predictions_per_seq, max_seq_length // 2


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str  # the TFRecord feature name
    dtype: str  # int64 | float
    length: object  # SEQ, PRED or a number
    parquet_name: str  # the Parquet column (Hugging Face's names where it has one)
    source: str  # the InstanceBatch attribute (or derived value) it is made from
    parquet_dtype: str = None  # a one-value feature's Parquet column type (lists: int32, float32)
    parquet_only: bool = False  # not in the TFRecords (whose bytes stay Google's features)


_INPUT = (
    Feature("input_ids", "int64", SEQ, "input_ids", "input_ids"),
    Feature("input_mask", "int64", SEQ, "attention_mask", "input_mask"),
    Feature("segment_ids", "int64", SEQ, "token_type_ids", "segment_ids"),
    Feature("next_sentence_labels", "int64", 1, "next_sentence_label", "labels", parquet_dtype="int8"),
    # Unique within a phase's output (the bucket's number in the high 32 bits, the row's number in
    # its bucket's shard in the low), the same in every run of the same command: what dynamic masks
    # are drawn from in PyTorch (wwm_torch), whatever the worker, rank or row order.
    Feature("instance_id", "int64", 1, "instance_id", "instance_ids", parquet_dtype="int64", parquet_only=True),
)
SCHEMAS = {
    # What Google's run_pretraining.py reads.
    "static": _INPUT + (
        Feature("masked_lm_positions", "int64", PRED, "masked_lm_positions", "masked_positions"),
        Feature("masked_lm_ids", "int64", PRED, "masked_lm_ids", "masked_ids"),
        Feature("masked_lm_weights", "float", PRED, "masked_lm_weights", "masked_weights"),
        Feature("word_ids", "int64", SEQ, "word_ids", "word_ids"),
    ),
    # Unmasked: the trainer masks whole words from word_ids, anew every epoch.
    "dynamic": _INPUT + (Feature("word_ids", "int64", SEQ, "word_ids", "word_ids"),),
}
# word_ids: 0 for [CLS], [SEP] and padding; the tokens of the k-th whole word of an instance have k.
NOT_A_WORD = 0
# Instances packed across documents (--pack_across_documents) say where each document starts, so a
# trainer can reset attention and positions per document (flash-attention's cu_seqlens): TFRecords
# hold the start positions (0 first, then after each document's [SEP]; zeros after the last, of at
# most max_seq_length // 2 documents, each at least a token and its [SEP]); Parquet, per token, the
# number of its document in the instance (1, 2, ...; 0 on padding).
PACKED = (Feature("document_starts", "int64", HALF_SEQ, None, "document_starts"),
          Feature("document_ids", "int64", SEQ, "document_ids", "document_ids"))


def schema(masking: str, *, parquet: bool = False, packed: bool = False) -> tuple:
    """The features of an output form. TFRecords of static masks keep Google's seven features
    (word_ids are for Parquet users, who mask themselves or check masks against words); the
    instance id is Parquet's only; instances packed across documents add where their documents
    start (``PACKED``)."""
    features = SCHEMAS[masking]
    if not parquet:
        features = tuple(f for f in features
                         if not f.parquet_only and not (masking == "static" and f.name == "word_ids"))
    if packed:
        features += tuple(f for f in PACKED if (f.parquet_name is not None) == parquet)
    return features


def feature_lengths(features, *, max_seq_length: int, max_predictions_per_seq: int) -> dict:
    sizes = {SEQ: max_seq_length, PRED: max_predictions_per_seq, HALF_SEQ: max_seq_length // 2}
    return {feature.name: sizes.get(feature.length, feature.length) for feature in features}


def feature_values(batch, feature: Feature, *, max_seq_length: int, max_predictions_per_seq: int) -> np.ndarray:
    """An (n, length) matrix of one feature's values for every row of an InstanceBatch."""
    if feature.source == "input_mask":
        return (np.arange(max_seq_length)[None, :] < batch.lengths[:, None]).astype(np.uint8)
    if feature.source == "masked_weights":
        return (np.arange(max_predictions_per_seq)[None, :] < batch.num_masked[:, None]).astype("<f4")
    if feature.source == "labels":
        return np.asarray(batch.labels, dtype=np.uint8)[:, None]
    values = getattr(batch, feature.source)
    return values[:, None] if values.ndim == 1 else values


# ---- tf.train.Example bytes ----

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


def _len_delimited(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | 2) + _encode_varint(len(payload)) + payload


_INT64_LIST, _FLOAT_LIST = 3, 2  # tf.train.Feature's oneof field numbers
_KIND = {"int64": _INT64_LIST, "float": _FLOAT_LIST}


class ExampleEncoder:
    """Serializes InstanceBatches to ``tf.train.Example`` bytes, for one schema and shape; the
    bytes are written by ``kernels.frame_examples``."""

    def __init__(self, features, *, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int):
        if vocab_size >= 1 << 21:
            raise ValueError("vocabularies of 2**21 tokens or more are not supported")
        # Protobuf's deterministic serialization writes map entries in key order: so do we.
        self.features = tuple(sorted(features, key=lambda f: f.name))
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        keys = [_len_delimited(1, f.name.encode()) for f in self.features]
        self._keys = np.frombuffer(b"".join(keys), np.uint8)
        self._key_offsets = np.cumsum([0] + [len(key) for key in keys])
        self._tags = np.array([_KIND[f.dtype] << 3 | 2 for f in self.features], np.uint8)
        self._is_float = np.array([f.dtype == "float" for f in self.features])
        self._length_checksums = {}

    def _values(self, batch):
        """Every feature's values side by side, in key order, as uint32 (a float as its 32 bits),
        and each feature's first column."""
        matrices = []
        for feature in self.features:
            values = feature_values(batch, feature, max_seq_length=self.max_seq_length,
                                    max_predictions_per_seq=self.max_predictions_per_seq)
            matrices.append(values.astype("<f4").view("<u4") if feature.dtype == "float" else values)
        columns = np.cumsum([0] + [m.shape[1] for m in matrices])
        # uint32: every value fits (ids are below 2**21), and half the bytes of int64 to move.
        return np.concatenate(matrices, axis=1, dtype=np.uint32, casting="unsafe"), columns

    def frames(self, batch):
        """An InstanceBatch -> (its rows as the bytes of a TFRecord file, each frame's end offset)."""
        values, columns = self._values(batch)
        out, offsets = kernels.frame_examples(values, columns, self._is_float, self._keys, self._key_offsets,
                                              self._tags)
        starts, ends = offsets[:-1], offsets[1:]
        record_lengths = ends - starts - 16
        length_checksums = np.array([self._length_checksum(length) for length in record_lengths.tolist()],
                                    dtype="<u4")
        # google_crc32c reads numpy slices in place (not memoryviews): no copy of the batch's bytes.
        record_checksums = _masked([google_crc32c.value(out[start + 12:end - 4])
                                    for start, end in zip(starts.tolist(), ends.tolist())])
        at = np.arange(4)
        out[(starts + 8)[:, None] + at] = length_checksums.view(np.uint8).reshape(-1, 4)
        out[(ends - 4)[:, None] + at] = record_checksums.view(np.uint8).reshape(-1, 4)
        return out.tobytes(), ends

    def _length_checksum(self, length: int) -> int:
        checksum = self._length_checksums.get(length)
        if checksum is None:
            checksum = self._length_checksums[length] = int(_masked([google_crc32c.value(struct.pack("<Q", length))])[0])
        return checksum

    def encode_batch(self, batch) -> list:
        """An InstanceBatch -> one serialized Example per row."""
        data, ends = self.frames(batch)
        starts = np.concatenate([[0], ends[:-1]])
        return [data[start + 12:end - 4] for start, end in zip(starts.tolist(), ends.tolist())]


# ---- TFRecord framing: length, masked crc32c of length, data, masked crc32c of data ----

def _masked(crcs) -> np.ndarray:
    crcs = np.asarray(crcs, dtype=np.uint64)
    return ((((crcs >> 15) | (crcs << 17)) + 0xA282EAD8) & 0xFFFFFFFF).astype("<u4")


def _masked_crc(data: bytes) -> bytes:
    return _masked([google_crc32c.value(data)]).tobytes()


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


# ---- Decoding with the protobuf library ----

def example_message():
    """The tf.train.Example message class, defined from its published field numbers with the
    protobuf library (TensorFlow, which ships it, is not needed to read our files): the messages of
    tensorflow/core/example/{example,feature}.proto, whose field numbers never change."""
    global _EXAMPLE_CLASS
    if _EXAMPLE_CLASS is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        file = descriptor_pb2.FileDescriptorProto(name="wwm_example.proto", package="tensorflow", syntax="proto3")
        for name, field_type in (("BytesList", "TYPE_BYTES"), ("FloatList", "TYPE_FLOAT"),
                                 ("Int64List", "TYPE_INT64")):
            message = file.message_type.add(name=name)
            message.field.add(name="value", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
                              type=getattr(descriptor_pb2.FieldDescriptorProto, field_type))
        feature = file.message_type.add(name="Feature")
        feature.oneof_decl.add(name="kind")
        for number, (name, kind) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"),
                                               ("int64_list", "Int64List")), start=1):
            feature.field.add(name=name, number=number, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                              type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                              type_name=f".tensorflow.{kind}", oneof_index=0)
        features = file.message_type.add(name="Features")
        entry = features.nested_type.add(name="FeatureEntry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
        entry.field.add(name="value", number=2, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name=".tensorflow.Feature")
        features.field.add(name="feature", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
                           type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                           type_name=".tensorflow.Features.FeatureEntry")
        example = file.message_type.add(name="Example")
        example.field.add(name="features", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                          type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name=".tensorflow.Features")
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        _EXAMPLE_CLASS = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))
    return _EXAMPLE_CLASS


_EXAMPLE_CLASS = None


def decode_example(data: bytes) -> dict:
    """tf.train.Example bytes -> {feature name: list of ints or floats}."""
    example = example_message().FromString(data)
    decoded = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            raise ValueError(f"feature {name} holds bytes, which no wwm-data schema has")
        decoded[name] = list(getattr(feature, kind).value) if kind else []
    return decoded


@dataclasses.dataclass(frozen=True)
class DecodedInstance:
    """One instance as a reader sees it: unpadded, masks (if static) as lists."""
    input_ids: list
    segment_ids: list
    next_sentence_label: int
    masked_positions: list = ()
    masked_ids: list = ()
    word_ids: list = ()
    document_starts: list = ()  # packed instances: where each document starts (0 first)


def decoded_instance(values: dict) -> DecodedInstance:
    """{feature or Parquet column name: values} of either schema -> DecodedInstance. The names
    come from the schemas: each feature's values are taken under its TFRecord or Parquet name and
    kept under the instance field it is made from (``Feature.source``)."""
    fields = {}
    for feature in {f.name: f for features in (*SCHEMAS.values(), PACKED) for f in features}.values():
        name = next((n for n in (feature.name, feature.parquet_name) if n in values), None)
        if name is not None:
            fields[feature.source] = values[name]
    length = int(sum(fields["input_mask"]))
    num_masked = int(sum(fields.get("masked_weights", ())))
    label = fields["labels"]
    word_ids = fields.get("word_ids")
    return DecodedInstance(
        input_ids=list(fields["input_ids"][:length]),
        segment_ids=list(fields["segment_ids"][:length]),
        next_sentence_label=int(label[0] if isinstance(label, (list, tuple)) else label),
        masked_positions=list(fields.get("masked_positions", [])[:num_masked]),
        masked_ids=list(fields.get("masked_ids", [])[:num_masked]),
        word_ids=list(word_ids[:length]) if word_ids is not None else [],
        document_starts=_document_starts(fields, length),
    )


def _document_starts(fields: dict, length: int) -> list:
    """Start positions from either form: TFRecord's zero-padded starts, or Parquet's per-token ids."""
    if "document_starts" in fields:
        starts = list(fields["document_starts"])
        return [0] + [s for s in starts[1:] if s > 0]
    if "document_ids" in fields:
        ids = list(fields["document_ids"][:length])
        return [0] + [k for k in range(1, length) if ids[k] != ids[k - 1]]
    return []
