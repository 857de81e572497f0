import sys

from wwm_trainer.cli import main

sys.exit(main())
