"""`mx.image`: MXNet 1.9.1's image decoding, resizing, cropping, augmenters and ImageIter, on OpenCV (optional
dependency opencv-python-headless, imported on first use); `mx.io.ImageRecordIter` lives in record_iter."""
from .image import *  # noqa: F401,F403
from .image import __all__ as _image_all
from .record_iter import ImageRecordIter  # noqa: F401

__all__ = list(_image_all)     # ImageRecordIter is mx.io's (onnxsym/__init__.py puts it there)
