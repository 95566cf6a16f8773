"""`mx.contrib.amp`: automatic mixed precision (MXNet 1.9.1's symbolic parts); see amp.py."""
from . import amp, lists  # noqa: F401
from .amp import *  # noqa: F401,F403
from .amp import __all__ as _amp_all

__all__ = ["amp", "lists"] + list(_amp_all)
