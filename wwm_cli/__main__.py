"""``python -m wwm_cli ...`` is ``wwm ...``."""
from wwm_cli import program

program()
