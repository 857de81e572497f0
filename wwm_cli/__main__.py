"""``python -m wwm_cli ...`` is ``wwm ...``."""
import sys

from wwm_cli import main

sys.exit(main())
