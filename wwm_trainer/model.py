"""BERT for pretraining, in Keras 3 (TensorFlow backend): the layout of Google's modeling.py.

Every weight lives in a layer attribute named after its place in Google's checkpoints
(``embeddings.word_embeddings``, ``encoder_layers[n].query.kernel``, ...), so the map between the
two (``checkpoint_io``) is a plain walk over attributes. Dense kernels are [in, out] in both.
"""
import dataclasses
import math

import keras
import tensorflow as tf

from wwm_trainer.config import BertConfig

if keras.backend.backend() != "tensorflow":
    raise ImportError(f"wwm_trainer needs Keras' TensorFlow backend, not {keras.backend.backend()!r}: "
                      "set KERAS_BACKEND=tensorflow (or leave it unset)")

LAYER_NORM_EPSILON = 1e-12  # Google's


class SeedSequence:
    """Distinct seeds for each initializer and dropout layer, from one run seed: a Keras
    initializer given an int seed draws the same values every time it is called, so layers must
    not share one."""

    def __init__(self, seed: int):
        self._next = seed * 1000

    def __call__(self) -> int:
        self._next += 1
        return self._next


class ReplicaDropout(keras.layers.Layer):
    """Dropout whose masks differ between replicas. Keras' Dropout keeps its seed state in a
    variable, which a distribution strategy mirrors: every replica would then drop the same
    positions of its batch. Here the replica's id is folded into each step's seed."""

    def __init__(self, rate: float, seed: int, dtype=None):
        super().__init__(dtype=dtype)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or not self.rate:
            return inputs
        step_seed = tf.cast(self.seed_generator.next(), tf.int32)
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        seed = tf.random.experimental.stateless_fold_in(step_seed, replica_id)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed)


def activation(name: str):
    if name in ("gelu", "gelu_new"):
        return lambda x: keras.activations.gelu(x, approximate=True)  # Google's modeling.py gelu
    return keras.activations.get(name)


def _initializer(config: BertConfig, seeds: SeedSequence):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range, seed=seeds())


def _dense(units, name, config, seeds, dtype, act=None):
    return keras.layers.Dense(units, activation=act, name=name, dtype=dtype,
                              kernel_initializer=_initializer(config, seeds), bias_initializer="zeros")


def _layer_norm(name, dtype):
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name, dtype=dtype)


class Embeddings(keras.layers.Layer):
    """bert/embeddings: word + token type + position embeddings, LayerNorm, dropout."""

    def __init__(self, config: BertConfig, seeds: SeedSequence, dtype=None):
        super().__init__(name="embeddings", dtype=dtype)
        self.config = config
        self._initializers = [_initializer(config, seeds) for _ in range(3)]
        self.layer_norm = _layer_norm("LayerNorm", dtype)
        self.dropout = ReplicaDropout(config.hidden_dropout_prob, seed=seeds(), dtype=dtype)

    def build(self, input_shape=None):
        config, (word, token_type, position) = self.config, self._initializers
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(config.vocab_size, config.hidden_size), initializer=word)
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(config.type_vocab_size, config.hidden_size), initializer=token_type)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(config.max_position_embeddings, config.hidden_size),
            initializer=position)
        self.layer_norm.build((None, None, config.hidden_size))

    def call(self, input_ids, segment_ids, training=False):
        seq_length = tf.shape(input_ids)[1]
        embeddings = (tf.gather(self.word_embeddings, input_ids)
                      + tf.gather(self.token_type_embeddings, segment_ids)
                      + self.position_embeddings[None, :seq_length])
        return self.dropout(self.layer_norm(embeddings), training=training)


class TransformerLayer(keras.layers.Layer):
    """bert/encoder/layer_N: self-attention and feed-forward, each with a residual and LayerNorm."""

    def __init__(self, index: int, config: BertConfig, seeds: SeedSequence, dtype=None):
        super().__init__(name=f"layer_{index}", dtype=dtype)
        hidden = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = hidden // config.num_attention_heads
        self.query = _dense(hidden, "query", config, seeds, dtype)
        self.key = _dense(hidden, "key", config, seeds, dtype)
        self.value = _dense(hidden, "value", config, seeds, dtype)
        self.attention_output = _dense(hidden, "attention_output_dense", config, seeds, dtype)
        self.attention_layer_norm = _layer_norm("attention_output_LayerNorm", dtype)
        self.intermediate = _dense(config.intermediate_size, "intermediate_dense", config, seeds, dtype,
                                   act=activation(config.hidden_act))
        self.output_dense = _dense(hidden, "output_dense", config, seeds, dtype)
        self.output_layer_norm = _layer_norm("output_LayerNorm", dtype)
        self.attention_dropout = ReplicaDropout(config.attention_probs_dropout_prob, seed=seeds(), dtype=dtype)
        self.attention_output_dropout = ReplicaDropout(config.hidden_dropout_prob, seed=seeds(), dtype=dtype)
        self.output_dropout = ReplicaDropout(config.hidden_dropout_prob, seed=seeds(), dtype=dtype)

    def _heads(self, x):
        batch, seq = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(x, [batch, seq, self.num_heads, self.head_size])

    def call(self, hidden, attention_bias, training=False):
        query, key, value = self._heads(self.query(hidden)), self._heads(self.key(hidden)), self._heads(self.value(hidden))
        scores = tf.einsum("bqnd,bknd->bnqk", query, key) * (1.0 / math.sqrt(self.head_size))
        # Softmax in float32: in bfloat16 the sum over a long row loses too much. (Keras casts a
        # layer's float inputs to its compute dtype, so the bias arrives in bfloat16 too.)
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + tf.cast(attention_bias, tf.float32), axis=-1)
        probs = self.attention_dropout(tf.cast(probs, hidden.dtype), training=training)
        context = tf.einsum("bnqk,bknd->bqnd", probs, value)
        context = tf.reshape(context, tf.shape(hidden))
        attended = self.attention_layer_norm(
            hidden + self.attention_output_dropout(self.attention_output(context), training=training))
        transformed = self.output_dense(self.intermediate(attended))
        return self.output_layer_norm(attended + self.output_dropout(transformed, training=training))


class MaskedLMHead(keras.layers.Layer):
    """cls/predictions: transform the masked positions, score them against the word embeddings
    (tied: the same table as the input embeddings), plus a bias per token."""

    def __init__(self, config: BertConfig, seeds: SeedSequence, dtype=None):
        super().__init__(name="cls_predictions", dtype=dtype)
        self.config = config
        self.transform = _dense(config.hidden_size, "transform_dense", config, seeds, dtype,
                                act=activation(config.hidden_act))
        self.layer_norm = _layer_norm("transform_LayerNorm", dtype)

    def build(self, input_shape=None):
        self.transform.build((None, self.config.hidden_size))
        self.layer_norm.build((None, self.config.hidden_size))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.config.vocab_size,), initializer="zeros")

    def call(self, sequence_output, positions, word_embeddings):
        selected = tf.gather(sequence_output, positions, batch_dims=1)  # [batch, predictions, hidden]
        transformed = self.layer_norm(self.transform(selected))
        logits = tf.matmul(transformed, tf.cast(word_embeddings, transformed.dtype), transpose_b=True)
        return tf.cast(logits, tf.float32) + tf.cast(self.output_bias, tf.float32)


class NextSentenceHead(keras.layers.Layer):
    """cls/seq_relationship: two-way classifier on the pooled [CLS] vector. Its weights are
    [2, hidden] as in Google's checkpoints (the transpose of a Dense kernel)."""

    def __init__(self, config: BertConfig, seeds: SeedSequence, dtype=None):
        super().__init__(name="cls_seq_relationship", dtype=dtype)
        self.config = config
        self._initializer = _initializer(config, seeds)

    def build(self, input_shape=None):
        self.output_weights = self.add_weight(name="output_weights", shape=(2, self.config.hidden_size),
                                              initializer=self._initializer)
        self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")

    def call(self, pooled):
        logits = tf.matmul(pooled, tf.cast(self.output_weights, pooled.dtype), transpose_b=True)
        return tf.cast(logits, tf.float32) + tf.cast(self.output_bias, tf.float32)


class BertPretrainer(keras.Model):
    """Encoder + masked-LM head (+ NSP head, whose loss counts only when the data has NSP labels;
    its weights exist either way, so checkpoints in and out have Google's full layout)."""

    def __init__(self, config: BertConfig, *, seed: int, dtype=None, **kwargs):
        super().__init__(name="bert", dtype=dtype, **kwargs)
        seeds = SeedSequence(seed)
        self.config, self.seed = config, seed
        self.embeddings = Embeddings(config, seeds, dtype)
        self.encoder_layers = [TransformerLayer(i, config, seeds, dtype) for i in range(config.num_hidden_layers)]
        self.pooler = _dense(config.hidden_size, "pooler_dense", config, seeds, dtype, act="tanh")
        self.mlm_head = MaskedLMHead(config, seeds, dtype)
        self.nsp_head = NextSentenceHead(config, seeds, dtype)

    def build_all(self) -> None:
        """Creates every weight, by a call on a dummy batch (under the strategy's scope)."""
        dummy = {"input_ids": tf.zeros([1, 2], tf.int32), "input_mask": tf.ones([1, 2], tf.int32),
                 "segment_ids": tf.zeros([1, 2], tf.int32), "masked_lm_positions": tf.zeros([1, 1], tf.int32)}
        self(dummy, training=False)

    def call(self, features, training=False):
        mask = tf.cast(features["input_mask"], tf.float32)
        attention_bias = (1.0 - mask[:, None, None, :]) * -10000.0  # Google's: padding gets no attention
        hidden = self.embeddings(features["input_ids"], features["segment_ids"], training=training)
        for layer in self.encoder_layers:
            hidden = layer(hidden, attention_bias, training=training)
        pooled = self.pooler(hidden[:, 0])
        return {
            "mlm_logits": self.mlm_head(hidden, features["masked_lm_positions"], self.embeddings.word_embeddings),
            "nsp_logits": self.nsp_head(pooled),
        }

    def get_config(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "seed": self.seed, "dtype": self.dtype_policy.name}

    @classmethod
    def from_config(cls, values: dict) -> "BertPretrainer":
        return cls(BertConfig(**values["config"]), seed=values["seed"], dtype=values.get("dtype"))

    def nsp_variables(self) -> list:
        """The weights only the NSP loss trains (left out of the update on data without NSP)."""
        return list(self.pooler.trainable_variables) + list(self.nsp_head.trainable_variables)
