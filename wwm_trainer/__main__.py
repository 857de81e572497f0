"""``python -m wwm_trainer ...`` is ``wwm train ...``."""
import sys

from pipelines.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
