"""``python -m wwm_trainer ...`` is ``wwm train ...``, without the data pipelines."""
import logging
import sys

from wwm_core.errors import guarded
from wwm_trainer.cli import train_main

# As `wwm` does: the trainer's progress (logger "wwm.train") at INFO, other libraries' warnings.
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("wwm").setLevel(logging.INFO)
sys.exit(guarded("wwm train", train_main, sys.argv[1:]))
