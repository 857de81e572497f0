"""``python -m wwm_trainer ...`` is ``wwm train ...``, without the data pipelines."""
import sys

from wwm_core.errors import guarded
from wwm_trainer.cli import train_main

sys.exit(guarded("wwm train", train_main, sys.argv[1:]))
