"""Where training runs: a Cloud TPU, several GPUs, or the one default device; and its precision."""
import logging
import threading

import tensorflow as tf

from wwm_trainer.errors import TrainerUsageError

log = logging.getLogger("wwm.train")
# Finding a named TPU asks the GCE metadata server; off Google Cloud that can wait on the network.
TPU_RESOLVE_TIMEOUT_S = 60


def _find_tpu(tpu: str):
    """The TPUClusterResolver, found in a daemon thread given at most TPU_RESOLVE_TIMEOUT_S: a
    named TPU is looked up through the metadata server, which off Google Cloud may not answer
    (a daemon thread left waiting does not hold up the process's exit)."""
    outcome = {}

    def resolve():
        try:
            outcome["resolver"] = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        except Exception as error:  # noqa: BLE001 - handed to the caller's thread, which sorts it
            outcome["error"] = error

    thread = threading.Thread(target=resolve, name="find-tpu", daemon=True)
    thread.start()
    thread.join(TPU_RESOLVE_TIMEOUT_S)
    if thread.is_alive():
        raise TrainerUsageError(f"--tpu {tpu}: no answer after {TPU_RESOLVE_TIMEOUT_S} s (is this a Cloud TPU VM, "
                                "or a VM that can reach that TPU?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["resolver"]


def _first_sentence(error: Exception) -> str:
    """TensorFlow's TPU errors run to many lines of op attributes: the first sentence says it."""
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0][:200] if text else type(error).__name__


def tpu_strategy(tpu: str) -> tf.distribute.TPUStrategy:
    """TPUStrategy for ``--tpu NAME`` (a TPU node or pod) or ``--tpu local`` (the TPU VM's own
    chips). Fails with one line when there is no such TPU, rather than a traceback or a wait."""
    try:
        resolver = _find_tpu(tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)  # on a real pod this may take a minute
    except (ValueError, RuntimeError, OSError, ImportError, tf.errors.OpError) as error:
        raise TrainerUsageError(f"--tpu {tpu}: no TPU available ({_first_sentence(error)}); run on a Cloud TPU VM "
                                "(--tpu local) or name a TPU this VM can reach, or leave out --tpu") from error
    return tf.distribute.TPUStrategy(resolver)


def pick_strategy(tpu) -> tf.distribute.Strategy:
    if tpu:
        return tpu_strategy(tpu)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default: one GPU, or the CPU


def _gpus_support_bf16() -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus]
    return bool(gpus) and all(capability >= (8, 0) for capability in capabilities)  # Ampere and later


def dtype_policy(mixed_precision: str, strategy) -> str:
    """The Keras dtype policy: bf16 compute with float32 weights on TPUs and bf16-capable GPUs
    (no loss scaling needed, unlike fp16), float32 elsewhere."""
    on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    if mixed_precision == "fp32":
        return "float32"
    if mixed_precision == "bf16":
        if not on_tpu and not _gpus_support_bf16():
            log.warning("--mixed_precision bf16 on a device without fast bfloat16: expect it to be slow")
        return "mixed_bfloat16"
    return "mixed_bfloat16" if on_tpu or _gpus_support_bf16() else "float32"


def describe(strategy) -> str:
    return f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)"
