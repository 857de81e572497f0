"""Optimizers and the learning-rate schedule of Google's BERT pretraining.

LAMB (layer-wise adaptive moments, You et al. 2019) for large-batch pretraining, as BERT-wwm and
BERT-wwm-ext were trained (batch 2,560); AdamW (Adam with decoupled weight decay, Google's
AdamWeightDecayOptimizer) otherwise, as Google's BERT and HFL's RoBERTa-wwm-ext (batch 384) and
RoBERTa-wwm-ext-large were. Both leave LayerNorm weights and biases out of weight decay.
"""
import keras
import tensorflow as tf

from wwm_trainer.presets import OPTIMIZERS

WEIGHT_DECAY = 0.01
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-6
# Google excludes "LayerNorm", "layer_norm" and "bias" from weight decay; in Keras a LayerNorm's
# weights are named gamma and beta, and every bias (the MLM output_bias too) ends in "bias".
NO_DECAY_NAMES = ("bias", "gamma", "beta")


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Google's schedule: linear warmup from 0 to the peak over ``warmup_steps``, then the peak
    decayed linearly to 0 at ``total_steps`` (the decay is measured from step 0, as in Google's
    optimization.py, so it continues the warmup line's end smoothly only when warmup is short)."""

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int):
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak_learning_rate, tf.float32)
        decayed = peak * tf.maximum(0.0, 1.0 - step / float(max(self.total_steps, 1)))
        if self.warmup_steps <= 0:
            return decayed
        warmup = peak * step / float(self.warmup_steps)
        return tf.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


class DecoupledAdam(keras.optimizers.Optimizer):
    """Adam moments plus decoupled weight decay, in the two forms BERT pretraining uses:

    - LAMB (``layer_adaptation=True``), as in the paper and tensorflow_addons: bias-corrected Adam
      step plus weight decay, scaled per weight by ||w|| / ||step|| (the trust ratio). Weights
      excluded from weight decay (LayerNorm, biases) are also excluded from the trust ratio.
      (keras.optimizers.Lamb applies the ratio to every weight and decays outside it.)
    - Google's AdamWeightDecayOptimizer (``bias_correction=False``): the step is
      m / (sqrt(v) + eps) + decay * w without Adam's bias correction, which
      keras.optimizers.AdamW applies (its early steps would be up to ~3x smaller).
    """

    def __init__(self, learning_rate, *, bias_correction: bool, layer_adaptation: bool,
                 weight_decay_rate=WEIGHT_DECAY, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON, name, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.bias_correction, self.layer_adaptation = bias_correction, layer_adaptation
        self.weight_decay_rate = weight_decay_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if hasattr(self, "add_optimizer_variables"):  # Keras 3.10 and later
            self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["m", "v"])
        else:  # Keras 3.0-3.9 (e.g. a TPU VM image's own Keras)
            self._momentums = [self.add_variable_from_reference(v, "m") for v in var_list]
            self._velocities = [self.add_variable_from_reference(v, "v") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        gradient = tf.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * tf.square(gradient))
        m_hat, v_hat = m, v
        if self.bias_correction:
            step = tf.cast(self.iterations + 1, dtype)
            m_hat = m / (1.0 - tf.pow(tf.cast(self.beta_1, dtype), step))
            v_hat = v / (1.0 - tf.pow(tf.cast(self.beta_2, dtype), step))
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        if self._use_weight_decay(variable):
            update += self.weight_decay_rate * variable
            if self.layer_adaptation:
                weight_norm, update_norm = tf.norm(variable), tf.norm(update)
                ratio = tf.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, 1.0)
                update *= ratio
        self.assign_sub(variable, lr * update)

    def get_config(self):
        config = super().get_config()
        config.update({"weight_decay_rate": self.weight_decay_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon, "bias_correction": self.bias_correction,
                       "layer_adaptation": self.layer_adaptation})
        return config


def create_optimizer(name: str, schedule) -> keras.optimizers.Optimizer:
    if name == "lamb":
        optimizer = DecoupledAdam(schedule, bias_correction=True, layer_adaptation=True, name="lamb")
    elif name == "adamw":
        optimizer = DecoupledAdam(schedule, bias_correction=False, layer_adaptation=False, name="adamw")
    else:
        raise ValueError(f"optimizer {name!r} is not one of {OPTIMIZERS}")
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
