"""`python -m onnxsym ...`: the `onnxsym` command (onnxsym/cli.py)."""
import sys

from .cli import main

sys.exit(main())
