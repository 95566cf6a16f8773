"""`mx.image`: MXNet 1.9.1's image functions, augmenters and ImageIter (python/mxnet/image/image.py), on OpenCV.

    img = mx.image.imdecode(open('cat.jpg', 'rb').read())     # NDArray (H, W, 3) uint8, RGB
    img = mx.image.resize_short(img, 256)
    img, rect = mx.image.center_crop(img, (224, 224))
    it = mx.image.ImageIter(32, (3, 224, 224), path_imgrec='data.rec', rand_crop=True, rand_mirror=True)

MXNet decodes and resizes with OpenCV; so does onnxsym, through the `opencv-python-headless` wheel (the optional
extra `onnxsym[image]`), imported on first use: pixels are MXNet's where both OpenCV builds decode alike
(libjpeg-turbo JPEG, PNG). The augmenters draw from Python's `random` (and numpy's for LightingAug) as MXNet's, so
`random.seed` makes them reproducible; their stream is not MXNet's C++ one.
"""
import json
import logging
import numbers
import os
import random

import numpy as np

from .. import ndarray as nd
from ..base import MXNetError
from ..module import io
from ..recordio import MXIndexedRecordIO, MXRecordIO, unpack
from ..runtime.ndarray import NDArray

__all__ = ["imread", "imdecode", "imresize", "scale_down", "copyMakeBorder", "resize_short", "fixed_crop",
           "random_crop", "center_crop", "color_normalize", "random_size_crop", "imrotate", "random_rotate",
           "Augmenter", "SequentialAug",
           "ResizeAug", "ForceResizeAug", "RandomCropAug", "RandomSizedCropAug", "CenterCropAug", "RandomOrderAug",
           "BrightnessJitterAug", "ContrastJitterAug", "SaturationJitterAug", "HueJitterAug", "ColorJitterAug",
           "LightingAug", "ColorNormalizeAug", "RandomGrayAug", "HorizontalFlipAug", "CastAug", "CreateAugmenter",
           "ImageIter", "ImageCodecMissing"]


class ImageCodecMissing(MXNetError, ImportError):
    """mx.image and mx.io.ImageRecordIter need OpenCV (the opencv-python-headless package)."""


_CV2 = []


def cv2():
    """The cv2 module, imported on first use; ImageCodecMissing naming the package when it is not installed."""
    if not _CV2:
        try:
            import cv2 as module  # lazy: optional dependency (onnxsym[image]); the rest of onnxsym runs without it
        except ImportError as err:
            raise ImageCodecMissing(
                "mx.image and mx.io.ImageRecordIter decode and resize images with OpenCV, as MXNet does: "
                "pip install opencv-python-headless (or onnxsym[image]); import failed: %s" % err) from None
        _CV2.append(module)
    return _CV2[0]


def _np(src):
    return src.asnumpy() if isinstance(src, NDArray) else np.asarray(src)


def _hwc(out, like):
    """OpenCV drops a trailing channel axis of 1: put it back, as MXNet's images keep (H, W, 1)."""
    return out[:, :, None] if out.ndim == 2 and like.ndim == 3 else out


_INTERPS = (0, 1, 2, 3, 4)


def _decode(buf, flag=1, to_rgb=True):
    """uint8 numpy (H, W, C) from encoded bytes, as MXNet's _cvimdecode (C 3 for flag 1, 1 for flag 0)."""
    data = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else buf
    if data.size == 0:
        raise MXNetError("imdecode: the buffer is empty")
    img = cv2().imdecode(data, int(flag) if flag in (0, 1) else -1)
    if img is None:
        raise MXNetError("imdecode: decoding failed, the buffer (%d bytes) is not an image OpenCV reads"
                         % data.size)
    if img.ndim == 2:
        img = img[:, :, None]
    if to_rgb and img.shape[2] in (3, 4):
        img = np.concatenate([img[:, :, 2::-1], img[:, :, 3:]], axis=2)
    return np.ascontiguousarray(img)


def _into(result, out, who):
    """result as an NDArray, or written into `out` (MXNet's out= argument) when given."""
    if out is None:
        return NDArray(result)
    if tuple(out.shape) != result.shape:
        raise MXNetError("%s: out has shape %s, the result %s" % (who, tuple(out.shape), result.shape))
    out[:] = result.astype(out.dtype, copy=False)
    return out


def imdecode(buf, flag=1, to_rgb=True, out=None):
    """Decode an image to an NDArray (H, W, C) uint8: flag 1 color (C=3), 0 grayscale (C=1); RGB unless to_rgb
    is False (OpenCV's BGR).

    >>> img = mx.image.imdecode(open('cat.jpg', 'rb').read())
    """
    if isinstance(buf, NDArray):
        buf = buf.asnumpy().astype(np.uint8, copy=False).ravel()
    elif not isinstance(buf, (bytes, bytearray, np.ndarray)):
        raise ValueError("buf must be of type bytes, bytearray or numpy.ndarray,"
                         "if you would like to input type str, please convert to bytes")
    elif isinstance(buf, np.ndarray):
        buf = buf.astype(np.uint8, copy=False).ravel()
    return _into(_decode(buf, flag, to_rgb), out, "imdecode")


def imread(filename, flag=1, to_rgb=True, out=None):
    """Read and decode an image file to an NDArray (H, W, C) uint8 (see imdecode)."""
    if not os.path.isfile(filename):
        raise MXNetError("imread: file %r does not exist" % (filename,))
    with open(filename, "rb") as f:
        return _into(_decode(f.read(), flag, to_rgb), out, "imread")


def _resize(img, w, h, interp):
    if interp not in _INTERPS:
        raise MXNetError("imresize: interp must be one of 0-4 (OpenCV's INTER_*), got %r" % (interp,))
    if int(w) <= 0 or int(h) <= 0:
        raise MXNetError("imresize: the size must be positive, got w=%r h=%r" % (w, h))
    return _hwc(cv2().resize(img, (int(w), int(h)), interpolation=int(interp)), img)


def imresize(src, w, h, interp=1, out=None):
    """Resize an image (H, W, C) to (h, w, C) with OpenCV; interp 0 nearest, 1 bilinear, 2 bicubic, 3 area,
    4 Lanczos."""
    return _into(_resize(_np(src), w, h, interp), out, "imresize")


def scale_down(src_size, size):
    """Scale the crop size (w, h) down to fit inside src_size (w, h), keeping its aspect ratio."""
    w, h = size
    sw, sh = src_size
    if sh < h:
        w, h = float(w * sh) / h, sh
    if sw < w:
        w, h = sw, float(h * sw) / w
    return int(w), int(h)


_BORDERS = (0, 1, 2, 3, 4)


def copyMakeBorder(src, top, bot, left, right, type=0, value=0.0, values=(), out=None):  # noqa: A002 (MXNet's name)
    """Pad an image with OpenCV: type 0 constant (`values` per channel, else `value`), 1 reflect, 2 reflect_101,
    3 replicate, 4 wrap."""
    if type not in _BORDERS:
        raise MXNetError("copyMakeBorder: type must be 0-4 (OpenCV's BORDER_*), got %r" % (type,))
    img = _np(src)
    fill = tuple(float(v) for v in values) if values else (float(value),) * 4
    res = cv2().copyMakeBorder(img, int(top), int(bot), int(left), int(right), int(type), value=fill)
    return _into(_hwc(res, img), out, "copyMakeBorder")


def _get_interp_method(interp, sizes=()):
    if interp == 9:
        if sizes:
            oh, ow, nh, nw = sizes
            if nh > oh and nw > ow:
                return 2
            if nh < oh and nw < ow:
                return 3
            return 1
        return 2
    if interp == 10:
        return random.randint(0, 4)
    if interp not in _INTERPS:
        raise ValueError("Unknown interp method %d" % interp)
    return interp


def resize_short(src, size, interp=2):
    """Resize so that the shorter edge is `size` (the longer one in proportion, rounded down)."""
    h, w = _np(src).shape[:2]
    if h > w:
        new_h, new_w = size * h // w, size
    else:
        new_h, new_w = size, size * w // h
    return imresize(src, new_w, new_h, interp=_get_interp_method(interp, (h, w, new_h, new_w)))


def fixed_crop(src, x0, y0, w, h, size=None, interp=2):
    """Crop (x0, y0, w, h), then resize to size (w, h) when given and different."""
    out = _np(src)[y0:y0 + h, x0:x0 + w]
    if size is not None and (w, h) != tuple(size):
        return NDArray(_resize(np.ascontiguousarray(out), size[0], size[1],
                               _get_interp_method(interp, (h, w, size[1], size[0]))))
    return NDArray(np.ascontiguousarray(out))


def random_crop(src, size, interp=2):
    """Crop `size` (w, h) at a random place (upsampling when the image is smaller); returns (image, (x, y, w, h))."""
    h, w = _np(src).shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0 = random.randint(0, w - new_w)
    y0 = random.randint(0, h - new_h)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def center_crop(src, size, interp=2):
    """Crop `size` (w, h) at the center (upsampling when the image is smaller); returns (image, (x, y, w, h))."""
    h, w = _np(src).shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0 = int((w - new_w) / 2)
    y0 = int((h - new_h) / 2)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def color_normalize(src, mean, std=None):
    """(src - mean) / std, per channel (mean/std broadcast over the last axis)."""
    out = _np(src)
    if mean is not None:
        out = out - _np(mean).astype(out.dtype, copy=False)
    if std is not None:
        out = out / _np(std).astype(out.dtype, copy=False)
    return NDArray(out)


def random_size_crop(src, size, area, ratio, interp=2, **kwargs):
    """Crop a random area fraction (in `area`) with a random aspect ratio (log-uniform in `ratio`), resized to
    size (w, h); center_crop after ten misses. Returns (image, (x, y, w, h))."""
    h, w = _np(src).shape[:2]
    src_area = h * w
    if "min_area" in kwargs:
        area = kwargs.pop("min_area")
    if kwargs:
        raise TypeError("random_size_crop: unexpected keyword arguments %s" % sorted(kwargs))
    if isinstance(area, numbers.Number):
        area = (area, 1.0)
    for _ in range(10):
        target_area = random.uniform(area[0], area[1]) * src_area
        log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
        new_ratio = np.exp(random.uniform(*log_ratio))
        new_w = int(round(np.sqrt(target_area * new_ratio)))
        new_h = int(round(np.sqrt(target_area / new_ratio)))
        if new_w <= w and new_h <= h:
            x0 = random.randint(0, w - new_w)
            y0 = random.randint(0, h - new_h)
            return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)
    return center_crop(src, size, interp)


def imrotate(src, rotation_degrees, zoom_in=False, zoom_out=False):
    """Rotate float32 image(s) (C, H, W) or (N, C, H, W) by rotation_degrees (a number, or one per image)
    counter-clockwise about the center, bilinear with zero fill (BilinearSampler); zoom_in scales so that no
    fill shows, zoom_out so that the whole image stays inside."""
    if zoom_in and zoom_out:
        raise ValueError("`zoom_in` and `zoom_out` cannot be both True")
    if np.dtype(src.dtype) != np.float32:
        raise TypeError("Only `float32` images are supported by this function")
    img = _np(src)
    expanded = img.ndim == 3
    if expanded:
        img = img[None]
        if not isinstance(rotation_degrees, numbers.Number):
            raise TypeError("When a single image is passed the rotation angle is required to be a scalar.")
    elif img.ndim != 4:
        raise ValueError("Only 3D and 4D are supported by this function")
    if isinstance(rotation_degrees, numbers.Number):
        rotation_degrees = [rotation_degrees] * len(img)
    degrees = _np(rotation_degrees).astype(np.float32).reshape(-1)
    if len(img) != len(degrees):
        raise ValueError("The number of images must be equal to the number of rotation angles")
    rad = (np.float32(np.pi) * degrees / np.float32(180))[:, None, None]
    _, _, h, w = img.shape
    hscale, wscale = np.float32((h - 1) / 2), np.float32((w - 1) / 2)
    hm = (np.arange(h, dtype=np.float32)[:, None] - hscale)[None] * np.ones((1, 1, w), np.float32)
    wm = (np.arange(w, dtype=np.float32)[None, :] - wscale)[None] * np.ones((1, h, 1), np.float32)
    cos, sin = np.cos(rad), np.sin(rad)
    wrot = (wm * cos - hm * sin) / wscale
    hrot = (wm * sin + hm * cos) / hscale
    scale = np.float32(1)
    if zoom_in or zoom_out:
        hf, wf = np.float32(h), np.float32(w)
        rho, ang = np.sqrt(hf * hf + wf * wf), np.arctan(hf / wf)
        max_x = np.maximum(np.abs(rho * np.cos(ang + np.abs(rad))), np.abs(rho * np.cos(ang - np.abs(rad))))
        max_y = np.maximum(np.abs(rho * np.sin(ang + np.abs(rad))), np.abs(rho * np.sin(ang - np.abs(rad))))
        scale = (np.maximum(max_x / wf, max_y / hf) if zoom_out else np.minimum(wf / max_x, hf / max_y))[:, None]
    grid = (np.stack([wrot, hrot], axis=1) * scale).astype(np.float32)
    out = nd.BilinearSampler(NDArray(np.ascontiguousarray(img)), NDArray(grid))
    return out[0] if expanded else out


def random_rotate(src, angle_limits, zoom_in=False, zoom_out=False):
    """imrotate by angles drawn uniformly from angle_limits (numpy's RNG): one for an image (C, H, W), one per
    image for a batch."""
    if src.ndim == 3:
        degrees = np.random.uniform(*angle_limits)
    else:
        degrees = NDArray(np.random.uniform(*angle_limits, size=src.shape[0]).astype(np.float32))
    return imrotate(src, degrees, zoom_in=zoom_in, zoom_out=zoom_out)


# ----- augmenters -----

class Augmenter(object):
    """Image augmenter base class: `aug(src)` returns the augmented image (NDArray (H, W, C))."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        for k, v in self._kwargs.items():
            if isinstance(v, NDArray):
                v = v.asnumpy()
            if isinstance(v, np.ndarray):
                self._kwargs[k] = v.tolist()

    def dumps(self):
        """The augmenter as a JSON string: [class name in lower case, its arguments]."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, src):
        raise NotImplementedError("Must override implementation.")


class SequentialAug(Augmenter):
    """Apply the augmenters `ts` in order."""

    def __init__(self, ts):
        super().__init__()
        self.ts = ts

    def dumps(self):
        return [self.__class__.__name__.lower(), [x.dumps() for x in self.ts]]

    def __call__(self, src):
        for aug in self.ts:
            src = aug(src)
        return src


class _SizedAug(Augmenter):
    """An augmenter of an output `size` (w, h) and an interpolation method."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size = size
        self.interp = interp


class ResizeAug(_SizedAug):
    """Resize the shorter edge to `size`."""

    def __call__(self, src):
        return resize_short(src, self.size, self.interp)


class ForceResizeAug(_SizedAug):
    """Resize to `size` (w, h) regardless of the aspect ratio."""

    def __call__(self, src):
        shape = _np(src).shape
        sizes = (shape[0], shape[1], self.size[1], self.size[0])
        return imresize(src, *self.size, interp=_get_interp_method(self.interp, sizes))


class RandomCropAug(_SizedAug):
    """Crop `size` (w, h) at a random place."""

    def __call__(self, src):
        return random_crop(src, self.size, self.interp)[0]


class RandomSizedCropAug(Augmenter):
    """random_size_crop with `area` and `ratio`, resized to `size` (w, h)."""

    def __init__(self, size, area, ratio, interp=2, **kwargs):
        super().__init__(size=size, area=area, ratio=ratio, interp=interp)
        self.size = size
        self.area = kwargs.pop("min_area") if "min_area" in kwargs else area
        self.ratio = ratio
        self.interp = interp
        if kwargs:
            raise TypeError("RandomSizedCropAug: unexpected keyword arguments %s" % sorted(kwargs))

    def __call__(self, src):
        return random_size_crop(src, self.size, self.area, self.ratio, self.interp)[0]


class CenterCropAug(_SizedAug):
    """Crop `size` (w, h) at the center."""

    def __call__(self, src):
        return center_crop(src, self.size, self.interp)[0]


class RandomOrderAug(Augmenter):
    """Apply the augmenters `ts` in a random order (the list is shuffled in place, as MXNet's)."""

    def __init__(self, ts):
        super().__init__()
        self.ts = ts

    def dumps(self):
        return [self.__class__.__name__.lower(), [x.dumps() for x in self.ts]]

    def __call__(self, src):
        random.shuffle(self.ts)
        for t in self.ts:
            src = t(src)
        return src


def _float_image(src, who):
    img = _np(src)
    if img.dtype.kind != "f":
        raise MXNetError("%s works on a float image; cast it first (CastAug), got %s" % (who, img.dtype))
    return img


_GRAY_COEF = np.array([[[0.299, 0.587, 0.114]]], dtype=np.float32)


class BrightnessJitterAug(Augmenter):
    """Multiply by 1 + uniform(-brightness, brightness)."""

    def __init__(self, brightness):
        super().__init__(brightness=brightness)
        self.brightness = brightness

    def __call__(self, src):
        img = _float_image(src, "BrightnessJitterAug")
        alpha = 1.0 + random.uniform(-self.brightness, self.brightness)
        return NDArray(img * img.dtype.type(alpha))


class ContrastJitterAug(Augmenter):
    """Blend with the mean gray level: alpha * src + (1 - alpha) * mean(gray), alpha = 1 + uniform(+-contrast)."""

    def __init__(self, contrast):
        super().__init__(contrast=contrast)
        self.contrast = contrast
        self.coef = NDArray(_GRAY_COEF)

    def __call__(self, src):
        img = _float_image(src, "ContrastJitterAug")
        alpha = 1.0 + random.uniform(-self.contrast, self.contrast)
        gray = img * _GRAY_COEF.astype(img.dtype)
        gray = img.dtype.type(3.0 * (1.0 - alpha) / gray.size) * gray.sum(dtype=img.dtype)
        return NDArray(img * img.dtype.type(alpha) + gray)


class SaturationJitterAug(Augmenter):
    """Blend each pixel with its gray level: alpha * src + (1 - alpha) * gray, alpha = 1 + uniform(+-saturation)."""

    def __init__(self, saturation):
        super().__init__(saturation=saturation)
        self.saturation = saturation
        self.coef = NDArray(_GRAY_COEF)

    def __call__(self, src):
        img = _float_image(src, "SaturationJitterAug")
        alpha = 1.0 + random.uniform(-self.saturation, self.saturation)
        gray = (img * _GRAY_COEF.astype(img.dtype)).sum(axis=2, keepdims=True)
        gray *= img.dtype.type(1.0 - alpha)
        return NDArray(img * img.dtype.type(alpha) + gray)


class HueJitterAug(Augmenter):
    """Rotate the hue in YIQ space by uniform(-hue, hue) * pi."""

    def __init__(self, hue):
        super().__init__(hue=hue)
        self.hue = hue
        self.tyiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
        self.ityiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])

    def __call__(self, src):
        img = _float_image(src, "HueJitterAug")
        alpha = random.uniform(-self.hue, self.hue)
        u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
        bt = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = np.dot(np.dot(self.ityiq, bt), self.tyiq).T
        return NDArray(np.dot(img, t.astype(img.dtype)))


class ColorJitterAug(RandomOrderAug):
    """Brightness, contrast and saturation jitter in a random order."""

    def __init__(self, brightness, contrast, saturation):
        ts = []
        if brightness > 0:
            ts.append(BrightnessJitterAug(brightness))
        if contrast > 0:
            ts.append(ContrastJitterAug(contrast))
        if saturation > 0:
            ts.append(SaturationJitterAug(saturation))
        super().__init__(ts)


class LightingAug(Augmenter):
    """AlexNet-style PCA noise: add eigvec * (alpha * eigval), alpha ~ N(0, alphastd) from numpy's RNG."""

    def __init__(self, alphastd, eigval, eigvec):
        super().__init__(alphastd=alphastd, eigval=eigval, eigvec=eigvec)
        self.alphastd = alphastd
        self.eigval = eigval
        self.eigvec = eigvec

    def __call__(self, src):
        img = _float_image(src, "LightingAug")
        alpha = np.random.normal(0, self.alphastd, size=(3,))
        rgb = np.dot(self.eigvec * alpha, self.eigval)
        return NDArray(img + rgb.astype(img.dtype))


class ColorNormalizeAug(Augmenter):
    """(src - mean) / std."""

    def __init__(self, mean, std):
        super().__init__(mean=mean, std=std)
        self.mean = mean if mean is None or isinstance(mean, NDArray) else NDArray(np.asarray(mean, np.float32))
        self.std = std if std is None or isinstance(std, NDArray) else NDArray(np.asarray(std, np.float32))

    def __call__(self, src):
        return color_normalize(src, self.mean, self.std)


class RandomGrayAug(Augmenter):
    """With probability p, replace the image by its gray level (0.21 R + 0.72 G + 0.07 B) in every channel."""

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p
        self.mat = NDArray(np.array([[0.21, 0.21, 0.21], [0.72, 0.72, 0.72], [0.07, 0.07, 0.07]], np.float32))

    def __call__(self, src):
        if random.random() < self.p:
            img = _float_image(src, "RandomGrayAug")
            return NDArray(np.dot(img, self.mat.asnumpy().astype(img.dtype)))
        return src


class HorizontalFlipAug(Augmenter):
    """With probability p, mirror the image left-right."""

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p

    def __call__(self, src):
        if random.random() < self.p:
            return NDArray(np.ascontiguousarray(_np(src)[:, ::-1]))
        return src


class CastAug(Augmenter):
    """Cast to `typ` (float32 by default)."""

    def __init__(self, typ="float32"):
        super().__init__(type=typ)
        self.typ = typ

    def __call__(self, src):
        return NDArray(_np(src).astype(self.typ))


_MEAN = np.array([123.68, 116.28, 103.53], np.float32)
_STD = np.array([58.395, 57.12, 57.375], np.float32)


def CreateAugmenter(data_shape, resize=0, rand_crop=False, rand_resize=False, rand_mirror=False, mean=None,
                    std=None, brightness=0, contrast=0, saturation=0, hue=0, pca_noise=0, rand_gray=0,
                    inter_method=2):
    """MXNet's standard augmenter list for data_shape (C, H, W): resize, crop, mirror, cast, color jitter, hue,
    PCA noise, gray, normalization (mean/std True: ImageNet's)."""
    auglist = []
    if resize > 0:
        auglist.append(ResizeAug(resize, inter_method))
    crop_size = (data_shape[2], data_shape[1])
    if rand_resize:
        if not rand_crop:
            raise MXNetError("CreateAugmenter: rand_resize needs rand_crop=True")
        auglist.append(RandomSizedCropAug(crop_size, 0.08, (3.0 / 4.0, 4.0 / 3.0), inter_method))
    elif rand_crop:
        auglist.append(RandomCropAug(crop_size, inter_method))
    else:
        auglist.append(CenterCropAug(crop_size, inter_method))
    if rand_mirror:
        auglist.append(HorizontalFlipAug(0.5))
    auglist.append(CastAug())
    if brightness or contrast or saturation:
        auglist.append(ColorJitterAug(brightness, contrast, saturation))
    if hue:
        auglist.append(HueJitterAug(hue))
    if pca_noise > 0:
        eigval = np.array([55.46, 4.794, 1.148])
        eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
        auglist.append(LightingAug(pca_noise, eigval, eigvec))
    if rand_gray > 0:
        auglist.append(RandomGrayAug(rand_gray))
    for name, value in (("mean", mean), ("std", std)):
        if value is not None and value is not True:
            if not isinstance(value, (np.ndarray, NDArray)) or value.shape[0] not in (1, 3):
                raise MXNetError("CreateAugmenter: %s must be True or a numpy/NDArray of 1 or 3 values, got %r"
                                 % (name, value))
    mean = NDArray(_MEAN.copy()) if mean is True else mean
    std = NDArray(_STD.copy()) if std is True else std
    if mean is not None or std is not None:
        auglist.append(ColorNormalizeAug(mean, std))
    return auglist


# ----- ImageIter -----

class ImageIter(io.DataIter):
    """Batches of images from a RecordIO file (path_imgrec, optionally indexed by path_imgidx), an image list
    file (path_imglist, files under path_root) or a python list `imglist` of [label..., path] entries, through
    `aug_list` (else CreateAugmenter(data_shape, **kwargs)). Data (batch, C, H, W) float32, labels (batch,) or
    (batch, label_width). last_batch_handle: 'pad' (fill from the start, report pad), 'discard' or 'roll_over'.
    """

    def __init__(self, batch_size, data_shape, label_width=1, path_imgrec=None, path_imglist=None, path_root=None,
                 path_imgidx=None, shuffle=False, part_index=0, num_parts=1, aug_list=None, imglist=None,
                 data_name="data", label_name="softmax_label", dtype="float32", last_batch_handle="pad", **kwargs):
        super().__init__()
        if not (path_imgrec or path_imglist or isinstance(imglist, list)):
            raise MXNetError("ImageIter: give path_imgrec, path_imglist or imglist (a list)")
        if dtype not in ("int32", "float32", "int64", "float64"):
            raise MXNetError("ImageIter: label dtype %s not supported (int32, float32, int64, float64)" % dtype)
        if last_batch_handle not in ("pad", "discard", "roll_over"):
            raise MXNetError("ImageIter: last_batch_handle must be 'pad', 'discard' or 'roll_over', got %r"
                             % (last_batch_handle,))
        if not 0 <= part_index < num_parts:
            raise MXNetError("ImageIter: part_index must be in [0, num_parts=%d), got %d" % (num_parts, part_index))
        cls = self.__class__.__name__
        imgkeys = []
        if path_imgrec:
            logging.info("%s: loading recordio %s...", cls, path_imgrec)
            if path_imgidx:
                self.imgrec = MXIndexedRecordIO(path_imgidx, path_imgrec, "r")
                self.imgidx = list(self.imgrec.keys)
            else:
                self.imgrec = MXRecordIO(path_imgrec, "r")
                self.imgidx = None
        else:
            self.imgrec = None
        if path_imglist:
            logging.info("%s: loading image list %s...", cls, path_imglist)
            self.imglist = {}
            with open(path_imglist) as fin:
                for number, line in enumerate(fin, 1):
                    fields = line.strip().split("\t")
                    if not line.strip():
                        continue
                    if len(fields) < 3:
                        raise MXNetError("ImageIter: line %d of %s needs index<TAB>label(s)<TAB>path, got %r"
                                         % (number, path_imglist, line.strip()))
                    key = int(fields[0])
                    self.imglist[key] = (np.array(fields[1:-1], dtype=np.float64).astype(dtype), fields[-1])
                    imgkeys.append(key)
        elif isinstance(imglist, list):
            logging.info("%s: loading image list...", cls)
            self.imglist = {}
            for index, img in enumerate(imglist, 1):
                key = str(index)
                if len(img) > 2:
                    label = np.array(img[:-1], dtype=dtype)
                elif isinstance(img[0], numbers.Number):
                    label = np.array([img[0]], dtype=dtype)
                else:
                    label = np.array(img[0], dtype=dtype)
                self.imglist[key] = (label, img[-1])
                imgkeys.append(key)
        else:
            self.imglist = None
        self.path_root = path_root
        data_shape = tuple(data_shape)
        self.check_data_shape(data_shape)
        self.provide_data = [io.DataDesc(data_name, (batch_size,) + data_shape)]
        self.provide_label = [io.DataDesc(label_name, (batch_size, label_width) if label_width > 1
                                          else (batch_size,))]
        self.batch_size = batch_size
        self.data_shape = data_shape
        self.label_width = label_width
        self.shuffle = shuffle
        if self.imgrec is None:
            self.seq = imgkeys
        elif shuffle or num_parts > 1 or path_imgidx:
            if self.imgidx is None:
                raise MXNetError("ImageIter: shuffle and num_parts > 1 need path_imgidx with path_imgrec")
            self.seq = self.imgidx
        else:
            self.seq = None
        if num_parts > 1:
            count = len(self.seq) // num_parts
            self.seq = self.seq[part_index * count:(part_index + 1) * count]
        self.auglist = CreateAugmenter(data_shape, **kwargs) if aug_list is None else aug_list
        self.cur = 0
        self._allow_read = True
        self.last_batch_handle = last_batch_handle
        self.num_image = len(self.seq) if self.seq is not None else None
        self._cache_data = self._cache_label = self._cache_idx = None
        self.reset()

    def reset(self):
        """Rewind (shuffling again when shuffle); with 'roll_over' a cached partial batch is kept."""
        if self.seq is not None and self.shuffle:
            random.shuffle(self.seq)
        if self.last_batch_handle != "roll_over" or self._cache_data is None:
            if self.imgrec is not None:
                self.imgrec.reset()
            self.cur = 0
            self._allow_read = True

    def hard_reset(self):
        """Rewind and drop any rolled-over batch."""
        if self.seq is not None and self.shuffle:
            random.shuffle(self.seq)
        if self.imgrec is not None:
            self.imgrec.reset()
        self.cur = 0
        self._allow_read = True
        self._cache_data = self._cache_label = self._cache_idx = None

    def next_sample(self):
        """(label, encoded image bytes) of the next image."""
        if self._allow_read is False:
            raise StopIteration
        if self.seq is not None:
            if self.cur >= self.num_image:
                if self.last_batch_handle != "discard":
                    self.cur = 0
                raise StopIteration
            idx = self.seq[self.cur]
            self.cur += 1
            if self.imgrec is not None:
                header, img = unpack(self.imgrec.read_idx(idx))
                return (header.label if self.imglist is None else self.imglist[idx][0]), img
            label, fname = self.imglist[idx]
            return label, self.read_image(fname)
        s = self.imgrec.read()
        if s is None:
            if self.last_batch_handle != "discard":
                self.imgrec.reset()
            raise StopIteration
        header, img = unpack(s)
        return header.label, img

    def _batchify(self, batch_data, batch_label, start=0):
        i = start
        try:
            while i < self.batch_size:
                label, s = self.next_sample()
                data = self.imdecode(s)
                try:
                    self.check_valid_image(data)
                except RuntimeError as e:
                    logging.debug("Invalid image, skipping:  %s", str(e))
                    continue
                data = self.augmentation_transform(data)
                batch_data[i] = self.postprocess_data(data).asnumpy()
                label = np.asarray(label, np.float32)
                batch_label[i] = label.reshape(batch_label[i].shape) if label.size == batch_label[i].size else label
                i += 1
        except StopIteration:
            if not i:
                raise
        return i

    def next(self):
        """The next DataBatch (data (batch, C, H, W) float32, label, pad)."""
        if self._cache_data is not None:
            batch_data, batch_label, i = self._cache_data, self._cache_label, self._cache_idx
        else:
            batch_data = np.zeros((self.batch_size,) + self.data_shape, np.float32)
            batch_label = np.zeros(self.provide_label[0][1], np.float32)
            i = self._batchify(batch_data, batch_label)
        pad = self.batch_size - i
        if pad != 0:
            if self.last_batch_handle == "discard":
                raise StopIteration
            if self.last_batch_handle == "roll_over" and self._cache_data is None:
                self._cache_data, self._cache_label, self._cache_idx = batch_data, batch_label, i
                raise StopIteration
            self._batchify(batch_data, batch_label, i)
            if self.last_batch_handle == "pad":
                self._allow_read = False
            else:
                self._cache_data = self._cache_label = self._cache_idx = None
        return io.DataBatch([NDArray(batch_data)], [NDArray(batch_label)], pad=pad)

    def check_data_shape(self, data_shape):
        """data_shape must be (3, H, W)."""
        if not len(data_shape) == 3:
            raise ValueError("data_shape should have length 3, with dimensions CxHxW")
        if not data_shape[0] == 3:
            raise ValueError("This iterator expects inputs to have 3 channels.")

    def check_valid_image(self, data):
        """RuntimeError for an empty image (skipped by the batch loader)."""
        if len(data[0].shape) == 0:
            raise RuntimeError("Data shape is wrong")

    def imdecode(self, s):
        """Decode an image; RuntimeError naming the record or file when it is broken."""
        try:
            return imdecode(s)
        except Exception as e:
            if self.seq is None:
                raise RuntimeError("Broken image in %s, %s" % (self.imgrec.uri, e)) from None
            idx = self.seq[(self.cur % self.num_image) - 1]
            where = ("filename: %s" % self.imglist[idx][1]) if self.imglist is not None else "index: %s" % idx
            raise RuntimeError("Broken image %s, %s" % (where, e)) from None

    def read_image(self, fname):
        """The bytes of the image file fname under path_root."""
        with open(os.path.join(self.path_root or "", fname), "rb") as fin:
            return fin.read()

    def augmentation_transform(self, data):
        """Apply the augmenters in order."""
        for aug in self.auglist:
            data = aug(data)
        return data

    def postprocess_data(self, datum):
        """(H, W, C) -> (C, H, W)."""
        return NDArray(np.ascontiguousarray(_np(datum).transpose(2, 0, 1)))
