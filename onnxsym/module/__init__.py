"""MXNet's training front-end (`mx.mod`): Module, BucketingModule, SequentialModule, PythonModule,
PythonLossModule, and their data, metric, initializer and optimizer companions (`mx.io`, `mx.metric`, `mx.init`,
`mx.optimizer`, `mx.lr_scheduler`, `mx.callback`)."""
from .base_module import BaseModule
from .bucketing_module import BucketingModule
from .module import Module
from .python_module import PythonLossModule, PythonModule
from .sequential_module import SequentialModule

__all__ = ["BaseModule", "Module", "BucketingModule", "SequentialModule", "PythonModule", "PythonLossModule"]
