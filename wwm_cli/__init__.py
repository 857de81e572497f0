"""The ``wwm`` command: one subcommand per stage, each a function of its argv.

This module only dispatches; each subcommand's module is imported when it runs, so ``wwm
recipe`` never loads Beam and ``wwm train`` never loads the pipelines.
"""
import gc
import importlib
import logging
import sys

from wwm_core.errors import guarded

# name: (module, function, one line for `wwm --help`)
COMMANDS = {
    "run": ("wwm_cli.data", "run", "corpus -> whole-word-masked instances (TFRecord / Parquet), as a recipe says"),
    "prepare": ("wwm_cli.data", "prepare", "corpus -> clean documents (Parquet), once, for later runs"),
    "rerun": ("wwm_cli.rerun", "rerun", "make a manifest's output again, byte for byte (the same inputs, checked)"),
    "segment": ("wwm_cli.segment", "segment", "prepared documents -> cached word boundaries, once, for later runs"),
    "segmenter": ("wwm_cli.segment", "segmenter_main", "train an LTP perceptron, or score a segmenter (train|eval)"),
    "plan": ("wwm_cli.plan", "plan_main", "shards, memory, instances, CPU- and worker-hours, from input sizes"),
    "submit": ("wwm_cli.submit", "submit_main", "the whole recipe (prepare, segment, run) on Dataflow, Spark or Flink"),
    "tokenizer": ("wwm_cli.tokenizer", "tokenizer_main", "train a WordPiece or BPE vocabulary on prepared documents, "
                  "audited on held-out ones (train)"),
    "recipe": ("wwm_cli.recipe", "recipe_main", "HFL's recipes and where their numbers come from (list|show NAME)"),
    "inspect": ("wwm_cli.inspect", "inspect_main", "show what an output holds: instances with masks and word groups, "
                "documents, word boundaries"),
    "report": ("wwm_cli.report", "report_main", "report.html with plots of a run or a prepared corpus (needs the "
               "report extra)"),
    "train": ("wwm_trainer.cli", "train_main", "pretrain BERT on a run's output (TPU, GPUs or CPU)"),
    "sample-path": ("wwm_cli", "sample_path_main", "print where the bundled sample corpus is (to try wwm run on)"),
}


def sample_path() -> str:
    """The bundled sample corpus (Google's layout: a sentence a line, documents between blank
    lines), wherever pip put the package."""
    import importlib.resources

    return str(importlib.resources.files("wwm_core") / "data" / "sample" / "corpus.txt")


def sample_path_main(argv) -> str:
    from wwm_core.helptext import parser

    parser("wwm sample-path", "Print the path of the bundled sample corpus, e.g. for\n"
           "  wwm run --input \"$(wwm sample-path)\" --output out/sample --segmenter jieba").parse_args(argv)
    print(sample_path())
    return sample_path()


def usage() -> str:
    lines = ["usage: wwm COMMAND [flags]   (wwm COMMAND --help for its flags and their defaults)", "",
             "Whole-word-masked pretraining data for Chinese BERT (BERT-wwm, RoBERTa-wwm-ext, RBT3, ...).", "",
             "commands:"]
    lines += [f"  {name:12s} {line}" for name, (_, _, line) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("wwm").setLevel(logging.INFO)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"wwm: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[argv[0]]
    command = getattr(importlib.import_module(module), function)
    return guarded(f"wwm {argv[0]}", command, argv[1:])


def program() -> None:
    """``wwm`` as a program (the console script and ``python -m wwm_cli``)."""
    status = main()
    # The command is done and nothing it made is used again: freezing what the collector tracks
    # spares the interpreter's exit a collection over every object of the modules a run imports.
    # Files are closed and streams flushed as usual (docs/performance.md).
    gc.freeze()
    sys.exit(status)
