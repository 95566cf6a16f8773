"""`mx.io.ImageRecordIter`: MXNet 1.9.1's C++ image RecordIO iterator (src/io/iter_image_recordio_2.cc with the
default augmenter of image_aug_default.cc), decoding and augmenting in worker threads.

    it = mx.io.ImageRecordIter(path_imgrec='train.rec', data_shape=(3, 224, 224), batch_size=32, resize=256,
                               rand_crop=True, rand_mirror=True, mean_r=123.68, mean_g=116.28, mean_b=103.53,
                               preprocess_threads=4)

Each record goes through MXNet's order of operations: OpenCV decode (gray for 1 channel, BGR for 3, as stored for
4), resize of the shorter edge to `resize`, `pad` border, crop of data_shape (center, or random with rand_crop;
an image smaller than the crop is first scaled up), mirror, BGR -> RGB, then (pixel - mean) * scale / std in
float32. Records are read in file order by the calling thread and decoded by a ThreadPoolExecutor of
`preprocess_threads` (OpenCV releases the GIL), `prefetch_buffer` batches ahead.

Deterministic options give MXNet's batches: the same pixels where both OpenCV builds decode alike, the same
labels, order, pad, round_batch wrap-around (the next epoch continues after the wrapped images), and the same
num_parts split (by bytes of the .rec, or by records with path_imgidx). As in MXNet, without round_batch the last
batch reports pad 0 and its unused rows keep the previous batch's values. MXNet's other augmentations follow its
order too: the affine transform (max_rotate_angle, rotate, max_shear_ratio, min/max_random_scale, aspect ratios,
min/max_img_size) after the resize, random_resized_crop (min/max_random_area, aspect ratios) in place of the
crop, then after the crop brightness/contrast/saturation, random_h/s/l, pca_noise.
Random choices (rand_crop, rand_mirror, the augmentations above, shuffle) come from numpy generators seeded by
`seed` (and `seed_aug`), reproducible but not MXNet's C++ stream;
without path_imgidx, shuffle permutes within windows of batch_size records (MXNet shuffles within each chunk).
"""
import collections
import concurrent.futures
import logging
import os

import numpy as np

from ..base import MXNetError, normalize_dtype
from ..module.io import DataBatch, DataDesc, _SingleArrayIter
from ..recordio import _read_record, unpack
from ..runtime.ndarray import NDArray
from .image import cv2

__all__ = ["ImageRecordIter"]

_MAGIC = 0xCED7230A
_RAND_MAGIC = 111       # MXNet's kRandMagic, added to seeds as MXNet does

# Options MXNet's ImageRecordIter takes that onnxsym implements, with MXNet's defaults.
_OPTIONS = {
    "path_imgrec": "", "path_imglist": "", "path_imgidx": "", "data_shape": None, "batch_size": None,
    "label_width": 1, "shuffle": False, "seed": 0, "seed_aug": None, "num_parts": 1, "part_index": 0,
    "preprocess_threads": 4, "prefetch_buffer": 4, "round_batch": True, "verbose": True, "dtype": None,
    "ctx": "gpu", "data_name": "data", "label_name": "softmax_label",
    "resize": -1, "rand_crop": False, "rand_mirror": False, "mirror": False, "inter_method": 1, "pad": 0,
    "fill_value": 255, "mean_r": 0.0, "mean_g": 0.0, "mean_b": 0.0, "mean_a": 0.0, "std_r": 1.0, "std_g": 1.0,
    "std_b": 1.0, "std_a": 1.0, "scale": 1.0, "shuffle_chunk_size": 0, "shuffle_chunk_seed": 0,
    # the affine transform (rotation, shear, scale, aspect ratio), HSL, color jitter and PCA noise of MXNet's
    # default augmenter
    "max_rotate_angle": 0, "rotate": -1, "max_shear_ratio": 0.0, "max_random_scale": 1.0,
    "min_random_scale": 1.0, "max_aspect_ratio": 0.0, "min_aspect_ratio": None, "max_img_size": 1e10,
    "min_img_size": 0.0, "random_h": 0, "random_s": 0, "random_l": 0, "brightness": 0.0, "contrast": 0.0,
    "saturation": 0.0, "pca_noise": 0.0,
    "random_resized_crop": False, "max_random_area": 1.0, "min_random_area": 1.0,
}
# Options of MXNet's augmenter that onnxsym accepts only at their default (no augmentation).
_DEFAULT_ONLY = {
    "rotate_list": (), "max_crop_size": -1, "min_crop_size": -1,
    "max_random_contrast": 0.0, "max_random_illumination": 0.0, "mean_img": "",
}
# MXNet's PCA eigenvectors scaled by the eigenvalues (ImageNet's), as float32
_EIGVEC = (np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32)
           * np.array([55.46, 4.794, 1.148], np.float32))


def _shape(value, name):
    if isinstance(value, str):
        value = [v for v in value.strip("()[] ").split(",") if v.strip()]
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise MXNetError("ImageRecordIter: %s must be a tuple of integers, got %r" % (name, value)) from None


def _flag(value):
    return value.strip().lower() in ("1", "true") if isinstance(value, str) else bool(value)


def _record_begin(handle, pos, size):
    """dmlc's RecordIOSplitter::SeekRecordBegin: the first 4-byte aligned offset >= pos where a record (its first
    or whole part: cflag 0 or 1) starts; `size` when there is none."""
    if pos <= 0:
        return 0
    pos = (pos + 3) & ~3
    while pos + 8 <= size:
        handle.seek(pos)
        block = handle.read(1 << 16)
        words = np.frombuffer(block[:len(block) & ~3], "<u4")
        for i in np.flatnonzero(words[:-1] == _MAGIC):
            if (int(words[i + 1]) >> 29) in (0, 1):
                return pos + 4 * int(i)
        pos += max(4, 4 * (len(words) - 1))
    return size


class ImageRecordIter(_SingleArrayIter):
    """Batches of images from an image RecordIO file (MXNet's mx.io.ImageRecordIter): data (batch_size,
    *data_shape) float32 (or uint8/int8 with dtype), label (batch_size,) or (batch_size, label_width).

    >>> it = mx.io.ImageRecordIter(path_imgrec='val.rec', data_shape=(3, 224, 224), batch_size=32, resize=256)
    """

    def __init__(self, **kwargs):
        unknown = sorted(set(kwargs) - set(_OPTIONS) - set(_DEFAULT_ONLY))
        if unknown:
            raise MXNetError("ImageRecordIter: unknown option%s %s (onnxsym implements %s)" % (
                "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(sorted(_OPTIONS))))
        for name, default in _DEFAULT_ONLY.items():
            if name in kwargs and kwargs[name] != default and not (isinstance(default, tuple) and not kwargs[name]):
                raise MXNetError("ImageRecordIter: option %s=%r is not supported by onnxsym (only its default %r); "
                                 "use mx.image.ImageIter with augmenters for it" % (name, kwargs[name], default))
        opts = dict(_OPTIONS)
        opts.update({k: v for k, v in kwargs.items() if k in _OPTIONS})
        for name in ("data_shape", "batch_size"):
            if opts[name] is None:
                raise MXNetError("ImageRecordIter: the option %s is required" % name)
        if not opts["path_imgrec"]:
            raise MXNetError("ImageRecordIter: path_imgrec (the .rec file) is required")
        self.data_shape = _shape(opts["data_shape"], "data_shape")
        if len(self.data_shape) != 3 or self.data_shape[0] not in (1, 3, 4) or min(self.data_shape) < 1:
            raise MXNetError("ImageRecordIter: data_shape must be (channels, height, width) with 1, 3 or 4 "
                             "channels, got %s" % (self.data_shape,))
        batch_size = int(opts["batch_size"])
        if batch_size < 1:
            raise MXNetError("ImageRecordIter: batch_size must be positive, got %r" % (opts["batch_size"],))
        super().__init__(batch_size)
        self.path_imgrec = os.fspath(opts["path_imgrec"])
        if not os.path.isfile(self.path_imgrec):
            raise MXNetError("ImageRecordIter: path_imgrec %r does not exist" % self.path_imgrec)
        self.label_width = int(opts["label_width"])
        self.num_parts, self.part_index = int(opts["num_parts"]), int(opts["part_index"])
        if not 0 <= self.part_index < self.num_parts:
            raise MXNetError("ImageRecordIter: part_index must be in [0, num_parts=%d), got %d"
                             % (self.num_parts, self.part_index))
        self.shuffle, self.round_batch = _flag(opts["shuffle"]), _flag(opts["round_batch"])
        self.seed = int(opts["seed"])
        self.seed_aug = None if opts["seed_aug"] is None else int(opts["seed_aug"])
        self.resize, self.pad, self.fill_value = int(opts["resize"]), int(opts["pad"]), int(opts["fill_value"])
        self.inter_method = int(opts["inter_method"])
        if self.inter_method not in (0, 1, 2, 3, 4, 9, 10):
            raise MXNetError("ImageRecordIter: invalid inter_method %d: valid values 0, 1, 2, 3, 4, 9, 10"
                             % self.inter_method)
        self.rand_crop, self.rand_mirror, self.mirror = (_flag(opts[k]) for k in ("rand_crop", "rand_mirror",
                                                                                   "mirror"))
        self._aug = {k: float(opts[k]) for k in (
            "max_rotate_angle", "rotate", "max_shear_ratio", "max_random_scale", "min_random_scale", "max_aspect_ratio",
            "max_img_size", "min_img_size", "random_h", "random_s", "random_l", "brightness", "contrast",
            "saturation", "pca_noise", "max_random_area", "min_random_area")}
        aug = self._aug
        self.random_resized_crop = _flag(opts["random_resized_crop"])
        if opts["min_aspect_ratio"] is not None:
            aug["ratio"] = (float(opts["min_aspect_ratio"]), aug["max_aspect_ratio"])
        else:
            aug["ratio"] = (1 - aug["max_aspect_ratio"], 1 + aug["max_aspect_ratio"])
        self._affine = (aug["max_rotate_angle"] > 0 or aug["max_shear_ratio"] > 0 or aug["rotate"] > 0
                        or aug["max_random_scale"] != 1 or aug["min_random_scale"] != 1
                        or (not self.random_resized_crop and aug["ratio"] != (1, 1))
                        or aug["max_img_size"] != 1e10 or aug["min_img_size"] != 0)
        if self.random_resized_crop:
            if aug["max_random_scale"] != 1 or aug["min_random_scale"] != 1 or self.rand_crop:
                raise MXNetError("ImageRecordIter: random_resized_crop conflicts with min_random_scale, "
                                 "max_random_scale and rand_crop")
            if not 0 < aug["ratio"][0] <= aug["ratio"][1] or aug["min_random_area"] > aug["max_random_area"]:
                raise MXNetError("ImageRecordIter: random_resized_crop needs 0 < min_aspect_ratio <= max_aspect_ratio "
                                 "and min_random_area <= max_random_area, got ratios %s, areas (%s, %s)"
                                 % (aug["ratio"], aug["min_random_area"], aug["max_random_area"]))
        self._resized_crop = self.random_resized_crop and (
            aug["max_random_area"] != 1 or aug["min_random_area"] != 1 or aug["ratio"] != (1, 1))
        if self._affine and self.inter_method == 0:
            raise MXNetError("ImageRecordIter: invalid inter_method 0 with the affine augmentation (rotation, "
                             "shear, scale, aspect ratio, image size): valid values 1, 2, 3, 4, 9, 10")
        self._jitter = aug["brightness"] > 0 or aug["contrast"] > 0 or aug["saturation"] > 0
        self._hsl = aug["random_h"] != 0 or aug["random_s"] != 0 or aug["random_l"] != 0
        if (self._jitter or self._hsl or aug["pca_noise"] > 0) and self.data_shape[0] != 3:
            raise MXNetError("ImageRecordIter: brightness/contrast/saturation, random_h/s/l and pca_noise need "
                             "3-channel images, data_shape is %s" % (self.data_shape,))
        self.dtype = np.dtype(np.float32) if opts["dtype"] is None else normalize_dtype(opts["dtype"])
        if self.dtype not in (np.float32, np.uint8, np.int8):
            raise MXNetError("ImageRecordIter: dtype must be float32, uint8 or int8, got %s" % (opts["dtype"],))
        channels = self.data_shape[0]
        means = np.array([opts["mean_r"], opts["mean_g"], opts["mean_b"], opts["mean_a"]], np.float32)[:channels]
        stds = np.array([opts["std_r"], opts["std_g"], opts["std_b"], opts["std_a"]], np.float32)[:channels]
        if np.any(stds == 0):
            raise MXNetError("ImageRecordIter: std_r/g/b/a must not be 0")
        self._mean = means.reshape(-1, 1, 1)
        self._mult = (np.float32(opts["scale"]) / stds).astype(np.float32).reshape(-1, 1, 1)
        self._mean_int = np.round(means).astype(np.int16).reshape(-1, 1, 1)
        self._label_map = self._read_imglist(opts["path_imglist"]) if opts["path_imglist"] else None
        self._index = self._read_index(opts["path_imgidx"]) if opts["path_imgidx"] else None
        self._prefetch = max(1, int(opts["prefetch_buffer"]))
        threads = max(1, int(opts["preprocess_threads"]))
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="ImageRecordIter")
        self._shuffle_rng = np.random.RandomState(self.seed + _RAND_MAGIC)
        self._random = (self.rand_crop or self.rand_mirror or self.inter_method == 10 or self._affine or self._jitter
                        or self._hsl or self._aug["pca_noise"] > 0 or self._resized_crop)
        self._count = 0
        self._pending = collections.deque()
        self._source = self._new_source()
        self._overflow = False
        label_shape = (batch_size,) if self.label_width == 1 else (batch_size, self.label_width)
        self._buffers = (np.zeros((batch_size,) + self.data_shape, self.dtype), np.zeros(label_shape, np.float32))
        self.provide_data = [DataDesc(opts["data_name"], (batch_size,) + self.data_shape, self.dtype.type)]
        self.provide_label = [DataDesc(opts["label_name"], label_shape, np.float32)]
        if _flag(opts["verbose"]):
            logging.info("ImageRecordIter: %s, use %d threads for decoding..", self.path_imgrec, threads)

    # ----- files -----

    def _read_imglist(self, path):
        """{image index: float32 labels} from an image list (index<TAB>labels...<TAB>path per line)."""
        if not os.path.isfile(path):
            raise MXNetError("ImageRecordIter: path_imglist %r does not exist" % (path,))
        labels = {}
        with open(path) as f:
            for number, line in enumerate(f, 1):
                fields = line.strip().split("\t")
                if not line.strip():
                    continue
                if len(fields) < self.label_width + 2:
                    raise MXNetError("ImageRecordIter: line %d of %s has %d labels, label_width is %d"
                                     % (number, path, max(0, len(fields) - 2), self.label_width))
                try:
                    labels[int(fields[0])] = np.array(fields[1:1 + self.label_width], np.float32)
                except ValueError:
                    raise MXNetError("ImageRecordIter: line %d of %s is not index<TAB>labels<TAB>path: %r"
                                     % (number, path, line.strip())) from None
        return labels

    def _read_index(self, path):
        """The byte offsets of the records of this part (dmlc's indexed_recordio split: by record count)."""
        if not os.path.isfile(path):
            raise MXNetError("ImageRecordIter: path_imgidx %r does not exist" % (path,))
        offsets = []
        with open(path) as f:
            for number, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    offsets.append(int(fields[1]))
                except (IndexError, ValueError):
                    raise MXNetError("ImageRecordIter: line %d of %s is not key<TAB>offset: %r"
                                     % (number, path, line.strip())) from None
        offsets.sort()
        step = (len(offsets) + self.num_parts - 1) // self.num_parts
        return offsets[step * self.part_index:step * (self.part_index + 1)]

    def _new_source(self):
        """A generator of the part's records (bytes) for one pass, shuffled when asked."""
        if self._index is not None:
            order = self._index
            if self.shuffle:
                order = [order[i] for i in self._shuffle_rng.permutation(len(order))]
            return self._indexed(order)
        records = self._sequential()
        return self._windows(records) if self.shuffle else records

    def _indexed(self, offsets):
        size = os.path.getsize(self.path_imgrec)
        with open(self.path_imgrec, "rb") as handle:
            for offset in offsets:
                handle.seek(offset)
                record = _read_record(handle, self.path_imgrec, lambda needed: size)
                if record is None:
                    raise MXNetError("ImageRecordIter: path_imgidx names offset %d, the end of %s"
                                     % (offset, self.path_imgrec))
                yield record

    def _sequential(self):
        size = os.path.getsize(self.path_imgrec)
        step = (size + self.num_parts - 1) // self.num_parts
        step = (step + 3) // 4 * 4
        with open(self.path_imgrec, "rb") as handle:
            begin = _record_begin(handle, min(step * self.part_index, size), size)
            end = _record_begin(handle, min(step * (self.part_index + 1), size), size)
            handle.seek(begin)
            while handle.tell() < end:
                record = _read_record(handle, self.path_imgrec, lambda needed: size)
                if record is None:
                    return
                yield record

    def _windows(self, records):
        window = []
        for record in records:
            window.append(record)
            if len(window) == self.batch_size:
                yield from (window[i] for i in self._shuffle_rng.permutation(len(window)))
                window = []
        yield from (window[i] for i in self._shuffle_rng.permutation(len(window)))

    # ----- one image -----

    def _interp(self, method, old_w, old_h, new_w, new_h, rng):
        if method == 9:
            if new_w > old_w and new_h > old_h:
                return 2
            return 3 if new_w < old_w and new_h < old_h else 1
        if method == 10:
            return int(rng.integers(0, 5))
        return method

    def _process(self, record, seed):
        """(data (C, H, W) of self.dtype, float32 labels) of one record, in a worker thread."""
        header, payload = unpack(record)
        if self._label_map is not None:
            label = self._label_map.get(int(header.id))
            if label is None:
                raise MXNetError("ImageRecordIter: image index %d of %s is not in path_imglist"
                                 % (header.id, self.path_imgrec))
        elif header.flag > 0:
            if header.flag != self.label_width:
                raise MXNetError("ImageRecordIter: rec file provide %d-dimensional label but label_width is set "
                                 "to %d" % (header.flag, self.label_width))
            label = np.asarray(header.label, np.float32)
        else:
            if self.label_width != 1:
                raise MXNetError("ImageRecordIter: label_width must be 1 unless an imglist is provided or the rec "
                                 "file is packed with multi dimensional label")
            label = np.array([header.label], np.float32)
        rng = np.random.default_rng(seed) if seed is not None else None
        channels, height, width = self.data_shape
        codec = cv2()
        img = codec.imdecode(np.frombuffer(payload, np.uint8), {1: 0, 3: 1, 4: -1}[channels])
        if img is None:
            raise MXNetError("ImageRecordIter: record of image index %d in %s is not an image OpenCV decodes"
                             % (header.id, self.path_imgrec))
        if channels == 4 and (img.ndim != 3 or img.shape[2] != 4):
            raise MXNetError("ImageRecordIter: invalid image with index %d: expected 4 channels, got %d"
                             % (header.id, 1 if img.ndim == 2 else img.shape[2]))
        rows, cols = img.shape[:2]
        if self.resize > 0:
            new_h, new_w = ((self.resize * rows // cols, self.resize) if rows > cols else
                            (self.resize, self.resize * cols // rows))
            img = codec.resize(img, (new_w, new_h),
                               interpolation=self._interp(self.inter_method, cols, rows, new_w, new_h, rng))
        if self._affine:
            img = self._warp(img, rng)
        if self.pad > 0:
            img = codec.copyMakeBorder(img, self.pad, self.pad, self.pad, self.pad, codec.BORDER_CONSTANT,
                                       value=(self.fill_value,) * 3)
        cropped = self._random_resized(img, rng) if self._resized_crop else None
        img = self._center_crop(img, rng) if cropped is None else cropped
        return self._finish(img, rng, label)

    def _random_resized(self, img, rng):
        """MXNet's random_resized_crop: up to ten tries of a random area and aspect ratio (sides swapped half of
        the time) inside the image, resized to data_shape; None when none fits."""
        aug, (_, height, width) = self._aug, self.data_shape
        rows, cols = img.shape[:2]
        area = np.float32(rows * cols)
        for _ in range(10):
            target = area * np.float32(rng.uniform(aug["min_random_area"], aug["max_random_area"]))
            ratio = np.float32(rng.uniform(*aug["ratio"]))
            y_area = int(np.round(np.sqrt(target / ratio)))
            x_area = int(np.round(np.sqrt(target * ratio)))
            if rng.random() > 0.5:
                y_area, x_area = x_area, y_area
            if y_area <= rows and x_area <= cols:
                y = int(rng.integers(0, rows - y_area + 1))
                x = int(rng.integers(0, cols - x_area + 1))
                method = self._interp(self.inter_method, x_area, y_area, width, height, rng)
                out = cv2().resize(np.ascontiguousarray(img[y:y + y_area, x:x + x_area]), (width, height),
                                   interpolation=method)
                return out[:, :, None] if out.ndim == 2 and img.ndim == 3 else out
        return None

    def _center_crop(self, img, rng):
        """Scale up an image smaller than data_shape, then crop data_shape at the center (or at random)."""
        codec, (_, height, width) = cv2(), self.data_shape
        method = self._interp(self.inter_method, img.shape[1], img.shape[0], width, height, rng)
        if img.shape[0] < height:
            new_cols = int(np.float32(height) / np.float32(img.shape[0]) * np.float32(img.shape[1]))
            img = codec.resize(img, (new_cols, height), interpolation=method)
        if img.shape[1] < width:
            new_rows = int(np.float32(width) / np.float32(img.shape[1]) * np.float32(img.shape[0]))
            img = codec.resize(img, (width, new_rows), interpolation=method)
        if img.shape[0] < height or img.shape[1] < width:
            raise MXNetError("ImageRecordIter: input image size smaller than input shape")
        y, x = img.shape[0] - height, img.shape[1] - width
        if self.rand_crop:
            y, x = int(rng.integers(0, y + 1)), int(rng.integers(0, x + 1))
        else:
            y, x = y // 2, x // 2
        return img[y:y + height, x:x + width]

    def _finish(self, img, rng, label):
        """Color augmentations, mirror, channel order and normalization of the cropped image."""
        channels = self.data_shape[0]
        if self._jitter:
            img = self._color_jitter(img, rng)
        if self._hsl:
            img = self._hsl_shift(img, rng)
        if self._aug["pca_noise"] > 0:
            alpha = rng.normal(0, self._aug["pca_noise"], 3).astype(np.float32)
            rgb = _EIGVEC @ alpha
            img = np.clip((img.astype(np.float32) + rgb[::-1]).astype(np.int32), 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = img[:, :, None]
        chw = img.transpose(2, 0, 1)
        if channels >= 3:
            chw = chw[[2, 1, 0, 3][:channels]]          # OpenCV's BGR(A) -> RGB(A)
        if (self.rand_mirror and rng.random() < 0.5) or self.mirror:
            chw = chw[:, :, ::-1]
        if self.dtype == np.uint8:
            data = np.ascontiguousarray(chw)
        elif self.dtype == np.int8:
            data = np.clip(chw.astype(np.int16) - self._mean_int, -128, 127).astype(np.int8)
        else:
            data = (chw.astype(np.float32) - self._mean) * self._mult
        return data, label

    def _warp(self, img, rng):
        """MXNet's affine augmentation: shear, rotation, scale and aspect ratio about the center, fill_value
        outside, output size scale * the input's (bounded by min/max_img_size)."""
        aug = self._aug
        shear = rng.random() * aug["max_shear_ratio"] * 2 - aug["max_shear_ratio"]
        limit = int(aug["max_rotate_angle"])
        angle = int(rng.integers(-limit, limit + 1))
        if aug["rotate"] > 0:
            angle = aug["rotate"]
        a, b = np.cos(angle / 180.0 * np.pi), np.sin(angle / 180.0 * np.pi)
        scale = ratio = 1.0
        if not self.random_resized_crop:
            scale = rng.random() * (aug["max_random_scale"] - aug["min_random_scale"]) + aug["min_random_scale"]
            ratio = rng.random() * (aug["ratio"][1] - aug["ratio"][0]) + aug["ratio"][0]
        hs = 2 * scale / (1 + ratio)
        ws = ratio * hs
        rows, cols = img.shape[:2]
        new_w = max(aug["min_img_size"], min(aug["max_img_size"], scale * cols))
        new_h = max(aug["min_img_size"], min(aug["max_img_size"], scale * rows))
        m = np.array([[hs * a - shear * b * ws, hs * b + shear * a * ws, 0], [-b * ws, a * ws, 0]], np.float32)
        m[0, 2] = (new_w - (m[0, 0] * cols + m[0, 1] * rows)) / 2
        m[1, 2] = (new_h - (m[1, 0] * cols + m[1, 1] * rows)) / 2
        method = self._interp(self.inter_method, cols, rows, new_w, new_h, rng)
        out = cv2().warpAffine(img, m, (int(new_w), int(new_h)), flags=method, borderMode=cv2().BORDER_CONSTANT,
                               borderValue=(self.fill_value,) * 3)
        return out[:, :, None] if out.ndim == 2 and img.ndim == 3 else out

    def _color_jitter(self, img, rng):
        """Brightness, contrast and saturation in a random order, on the BGR image (MXNet's gray level is
        OpenCV's RGB2GRAY of it)."""
        aug, codec = self._aug, cv2()
        alphas = [1.0 + rng.uniform(-aug[k], aug[k]) for k in ("brightness", "contrast", "saturation")]
        for i in rng.permutation(3):
            alpha = alphas[i]
            if i == 0:
                img = np.clip(np.rint(img.astype(np.float64) * alpha), 0, 255).astype(np.uint8)
            elif i == 1:
                mean = codec.mean(codec.cvtColor(img, codec.COLOR_RGB2GRAY))[0]
                img = np.clip(np.rint(img.astype(np.float64) * alpha + (1 - alpha) * mean), 0, 255).astype(np.uint8)
            else:
                gray = codec.cvtColor(codec.cvtColor(img, codec.COLOR_RGB2GRAY), codec.COLOR_GRAY2BGR)
                img = codec.addWeighted(img, alpha, gray, 1 - alpha, 0.0)
        return img

    def _hsl_shift(self, img, rng):
        """Shift hue, lightness and saturation (OpenCV's HLS) by amounts of about +-random_h/l/s."""
        aug, codec = self._aug, cv2()
        hls = codec.cvtColor(np.ascontiguousarray(img), codec.COLOR_BGR2HLS).astype(np.int32)
        shifts = []
        for k in ("random_h", "random_s", "random_l"):
            r = (rng.random() + 4 * rng.random()) / 5
            shifts.append(int(r * aug[k] * 2 - aug[k]))
        h, s, l = shifts
        hls = np.clip(hls + np.array([h, l, s]), 0, np.array([180, 255, 255])).astype(np.uint8)
        return codec.cvtColor(hls, codec.COLOR_HLS2BGR)

    # ----- batches -----

    def _aug_seed(self):
        self._count += 1
        if not self._random:
            return None
        if self.seed_aug is not None:
            return [self.seed_aug + _RAND_MAGIC, self._count]
        return [self.seed + _RAND_MAGIC, self.part_index, self._count]

    def _fill(self):
        while self._source is not None and len(self._pending) < self._prefetch * self.batch_size:
            record = next(self._source, None)
            if record is None:
                self._source = None
                break
            self._pending.append(self._pool.submit(self._process, record, self._aug_seed()))

    def reset(self):
        if self.round_batch and self._overflow:
            self._overflow = False          # the next epoch continues after the images the last batch wrapped
            self._fill()
            return
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._source = self._new_source()
        self._fill()

    def iter_next(self):
        if self._overflow:
            return False
        self._fill()
        count = min(self.batch_size, len(self._pending))
        if count == 0:
            return False
        results = [self._pending.popleft().result() for _ in range(count)]
        self._fill()
        pad = 0
        if count < self.batch_size and self.round_batch:
            pad = self.batch_size - count
            self._source = self._new_source()
            wrapped = []
            for _ in range(pad):
                record = next(self._source, None)
                if record is None:
                    raise MXNetError("ImageRecordIter: number of input images must be bigger than the batch size "
                                     "(%d images, batch_size %d)" % (count, self.batch_size))
                wrapped.append(self._pool.submit(self._process, record, self._aug_seed()))
            results += [future.result() for future in wrapped]
            self._overflow = True
        data, label = self._buffers
        for i, (image, labels) in enumerate(results):
            data[i] = image
            label[i] = labels[0] if label.ndim == 1 else labels
        self.current_batch = DataBatch([NDArray(data.copy())], [NDArray(label.copy())], pad=pad,
                                       provide_data=self.provide_data, provide_label=self.provide_label)
        return True


    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

