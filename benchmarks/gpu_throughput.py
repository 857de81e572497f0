"""Training throughput of the bundled trainer on this machine's accelerator, at sequence lengths 128
and 512: sequences per second, tokens per second and model FLOPs utilisation (MFU), beside the
anchor NVIDIA publishes for BERT pretraining. deploy/gpu_smoke.sh makes the data and runs it; it
runs on a CPU too (for a check of the script itself, without a meaningful MFU).

    python benchmarks/gpu_throughput.py --data128 OUT128 --data512 OUT512 [--model_config base]
        [--steps 300] [--batch128 128] [--batch512 32] [--record docs/gpu.md]

Model FLOPs count the matrix products a training step does whatever the implementation, three
times the forward pass (forward, and the two products of the backward pass): per token, the dense
layers' 2 x (4 d^2 + 2 d f) per layer and attention's 2 x 2 x L x d per layer (Q K^T and the
weighted sum), plus the masked-LM head's 2 x (d^2 + d V) at each predicted position (our trainer,
like Google's, computes logits only there). Embedding lookups, softmax, layer norms and the tiny
sentence-pair head are left out, as in NVIDIA's and the MFU literature's counts.

The anchor: NVIDIA DeepLearningExamples, TensorFlow2/LanguageModeling/BERT/README.md, "Pre-training
training performance: Single-node on NVIDIA DGX A100 (8x A100 80GB)": BERT-Large, 1 GPU, mixed
precision, 485.59 sequences/s at 128 and 96.52 at 512 (TensorFlow 21.02 NGC container, LAMB,
batch 312 and 40 per GPU). DeepLearningExamples publishes no TensorFlow BERT pretraining figure for
H100; on another GPU the comparison is of MFU, the share of the GPU's dense bf16 peak each reaches.
"""
import argparse
import datetime
import json
import logging
import pathlib
import sys

# Dense (not sparse) bf16 tensor-core peak, FLOP/s, from NVIDIA's data sheets.
PEAK_BF16 = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 NVL": 835e12,
             "H100 PCIe": 756e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 125e12, "A10": 125e12}
NVIDIA_ANCHOR = {"source": "NVIDIA DeepLearningExamples TensorFlow2/LanguageModeling/BERT README, 1x A100 80GB, "
                           "mixed precision, BERT-Large pretraining",
                 "gpu": "A100", "model": {"layers": 24, "hidden": 1024, "intermediate": 4096, "vocab": 30522},
                 "sequences_per_second": {128: 485.59, 512: 96.52}}
PREDICTIONS = {128: 20, 512: 80}  # Google's max_predictions_per_seq at each length


def training_flops_per_sequence(*, layers: int, hidden: int, intermediate: int, vocab: int, length: int,
                                predictions: int) -> float:
    """Model FLOPs of one training sequence (see the module's docstring)."""
    dense = 2 * (4 * hidden * hidden + 2 * hidden * intermediate) * layers
    attention = 2 * 2 * length * hidden * layers
    head = 2 * (hidden * hidden + hidden * vocab)
    return 3 * (length * (dense + attention) + predictions * head)


def peak_flops(gpu_name: str):
    """The dense bf16 peak of a GPU named as TensorFlow names it, or None when unknown."""
    for name, peak in sorted(PEAK_BF16.items(), key=lambda item: -len(item[0])):
        if name.lower() in gpu_name.lower():
            return peak
    return None


def anchor_mfu(length: int) -> float:
    model = NVIDIA_ANCHOR["model"]
    flops = training_flops_per_sequence(**model, length=length, predictions=PREDICTIONS[length])
    return NVIDIA_ANCHOR["sequences_per_second"][length] * flops / PEAK_BF16["A100"]


def measure(data: str, *, length: int, model_config: str, steps: int, batch: int, work: pathlib.Path) -> dict:
    from wwm_trainer.cli import train_main
    from wwm_trainer.config import PRESETS

    summary = train_main([f"--manifest={data}", f"--model_dir={work / f'model{length}'}",
                          f"--model_config={model_config}", "--recipe=none", "--optimizer=adamw",
                          "--mixed_precision=bf16", f"--num_train_steps={steps}", f"--train_batch_size={batch}",
                          f"--steps_per_loop={max(1, steps // 3)}", f"--save_checkpoints_steps={steps}"])
    phase = summary["phases"][0]
    steps_per_second = phase["steady_steps_per_second"] or phase["steps_per_second"]
    config = PRESETS[model_config]
    vocab = int(json.loads(pathlib.Path(data, "manifest.json").read_text())["vocab_size"])
    flops = training_flops_per_sequence(layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                                        intermediate=config["intermediate_size"], vocab=vocab, length=length,
                                        predictions=PREDICTIONS[length])
    sequences = steps_per_second * batch
    return {"length": length, "batch": batch, "steps": steps, "steady": bool(phase["steady_steps_per_second"]),
            "sequences_per_second": sequences, "tokens_per_second": sequences * length,
            "model_tflops_per_second": sequences * flops / 1e12, "dtype_policy": summary.get("dtype_policy"),
            "mlm_loss": [phase["first_steps"][0]["mlm_loss"], phase["last_steps"][-1]["mlm_loss"]]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data128", required=True, help="a wwm run output at max_seq_length 128")
    parser.add_argument("--data512", required=True, help="a wwm run output at max_seq_length 512")
    parser.add_argument("--model_config", default="base")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch128", type=int, default=128)
    parser.add_argument("--batch512", type=int, default=32)
    parser.add_argument("--work", required=True, help="a scratch folder for the checkpoints")
    parser.add_argument("--record", help="append the result as a table row to this Markdown file")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", "?") for gpu in gpus]
    gpu = ", ".join(names) or "no GPU (CPU)"
    peak = peak_flops(names[0]) if names else None
    results = {"date": datetime.date.today().isoformat(), "gpu": gpu, "gpus": len(gpus), "model": args.model_config,
               "tensorflow": tf.__version__, "peak_bf16_flops": peak, "anchor": NVIDIA_ANCHOR["source"],
               "lengths": []}
    for length, data, batch in ((128, args.data128, args.batch128), (512, args.data512, args.batch512)):
        result = measure(data, length=length, model_config=args.model_config, steps=args.steps, batch=batch,
                         work=pathlib.Path(args.work))
        result["mfu"] = result["model_tflops_per_second"] * 1e12 / (peak * max(1, len(gpus))) if peak else None
        result["anchor_mfu"] = anchor_mfu(length)
        results["lengths"].append(result)
        print(f"{gpu}: {args.model_config} at {length}, batch {batch}: {result['sequences_per_second']:.1f} "
              f"sequences/s, {result['tokens_per_second']:.0f} tokens/s, "
              f"{result['model_tflops_per_second']:.1f} model TFLOP/s, MFU "
              + (f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (no known bf16 peak)")
              + f"; NVIDIA's BERT-Large on an A100: MFU {result['anchor_mfu']:.1%}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.record:
        with open(args.record, "a", encoding="utf-8") as record:
            for result in results["lengths"]:
                mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a"
                record.write(f"| {results['date']} | {gpu} | {args.model_config} | {result['length']} | "
                             f"{result['batch']} | {result['sequences_per_second']:.1f} | "
                             f"{result['tokens_per_second']:.0f} | {mfu} | {result['anchor_mfu']:.1%} |\n")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
