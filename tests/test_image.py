"""mx.image and mx.io.ImageRecordIter against MXNet 1.9.1 (tests/fixtures/make_image_fixtures.py recorded its
outputs on small generated JPEG/PNG images and a .rec/.idx of them). The random augmenters are checked for
structure (shapes, ranges, exact mirror, seeds reproducing), not for MXNet's random stream."""
import json
import os
import random
import subprocess
import sys

import cv2      # opencv-python-headless, in the `test` extra (and onnxsym[image])
import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(HERE, "fixtures", "image")
CASES = json.load(open(os.path.join(FIX, "image_cases.json")))
EXPECTED = np.load(os.path.join(FIX, "image_expected.npz"))
IMAGES = CASES["images"]


def _bytes(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


def _pixels(actual, desired, cubic=False, level=1.0):
    """Equal; after a bicubic resize within one level (times the normalization `level`) on a few pixels: MXNet's
    OpenCV 3.4 and the opencv-python wheel round some bicubic results differently (nearest, bilinear, area and
    Lanczos, and JPEG/PNG decoding, agree exactly)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape and actual.dtype == desired.dtype
    if not cubic:
        np.testing.assert_allclose(actual, desired, rtol=0, atol=level * 1e-3)
        return
    diff = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    assert diff.max() <= level * 1.001, diff.max()
    assert np.mean(diff > level * 1e-3) < 0.1


def _img0():
    return mx.image.imdecode(_bytes("img0.jpg"))


# ----- functions -----

@pytest.mark.parametrize("index", range(len(IMAGES)))
def test_imdecode_matches_mxnet(index):
    buf = _bytes(IMAGES[index])
    for key, kwargs in (("decode", {}), ("decode_gray", {"flag": 0}), ("decode_bgr", {"to_rgb": False})):
        if "%s_%d" % (key, index) not in EXPECTED:
            continue
        out = mx.image.imdecode(buf, **kwargs)
        assert isinstance(out, mx.nd.NDArray) and out.dtype == np.uint8
        np.testing.assert_array_equal(out.asnumpy(), EXPECTED["%s_%d" % (key, index)])


def test_imread_and_imdecode_inputs():
    path = os.path.join(FIX, "img3.png")
    np.testing.assert_array_equal(mx.image.imread(path).asnumpy(), EXPECTED["decode_3"])
    buf = _bytes("img3.png")
    for source in (bytearray(buf), np.frombuffer(buf, np.uint8),
                   mx.nd.array(np.frombuffer(buf, np.uint8), dtype="uint8")):
        np.testing.assert_array_equal(mx.image.imdecode(source).asnumpy(), EXPECTED["decode_3"])


def test_out_arguments():
    out = mx.nd.zeros((30, 40, 3), dtype="uint8")
    assert mx.image.imdecode(_bytes("img0.jpg"), out=out) is out
    np.testing.assert_array_equal(out.asnumpy(), EXPECTED["decode_0"])
    small = mx.nd.zeros((17, 25, 3), dtype="uint8")
    mx.image.imresize(_img0(), 25, 17, interp=1, out=small)
    np.testing.assert_array_equal(small.asnumpy(), EXPECTED["imresize_1"])
    with pytest.raises(MXNetError, match="out has shape"):
        mx.image.imresize(_img0(), 25, 18, out=small)


def test_imdecode_bad_input():
    with pytest.raises(ValueError, match="bytes"):
        mx.image.imdecode("not bytes")
    with pytest.raises(MXNetError, match="not an image"):
        mx.image.imdecode(b"0123456789abcdef")
    with pytest.raises(MXNetError, match="empty"):
        mx.image.imdecode(b"")
    with pytest.raises(MXNetError, match="does not exist"):
        mx.image.imread(os.path.join(FIX, "missing.jpg"))


@pytest.mark.parametrize("interp", range(5))
def test_imresize_matches_mxnet(interp):
    img = _img0()
    _pixels(mx.image.imresize(img, 25, 17, interp=interp).asnumpy(), EXPECTED["imresize_%d" % interp], interp == 2)
    _pixels(mx.image.imresize(img, 31, 23, interp=interp).asnumpy(), EXPECTED["imresize_up_%d" % interp],
            interp == 2)


def test_imresize_keeps_one_channel_and_checks_interp():
    gray = mx.image.imdecode(_bytes("img2.png"), flag=0)
    assert mx.image.imresize(gray, 10, 7).shape == (7, 10, 1)
    with pytest.raises(MXNetError, match="interp"):
        mx.image.imresize(_img0(), 10, 10, interp=7)


def test_resize_short_crops_normalize_border_match_mxnet():
    tall = mx.image.imdecode(_bytes("img1.jpg"))
    _pixels(mx.image.resize_short(tall, 20).asnumpy(), EXPECTED["resize_short"], cubic=True)
    np.testing.assert_array_equal(mx.image.resize_short(_img0(), 45, interp=1).asnumpy(), EXPECTED["resize_short_up"])
    out, rect = mx.image.center_crop(_img0(), (20, 16))
    np.testing.assert_array_equal(out.asnumpy(), EXPECTED["center_crop"])
    assert list(rect) == CASES["center_crop_rect"]
    out, rect = mx.image.center_crop(_img0(), (50, 50))
    _pixels(out.asnumpy(), EXPECTED["center_crop_up"], cubic=True)
    assert list(rect) == CASES["center_crop_up_rect"]
    _pixels(mx.image.fixed_crop(_img0(), 3, 4, 20, 10, size=(30, 12)).asnumpy(), EXPECTED["fixed_crop"], cubic=True)
    mean, std = mx.nd.array([123.68, 116.28, 103.53]), mx.nd.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(mx.image.color_normalize(_img0().astype("float32"), mean, std).asnumpy(),
                               EXPECTED["color_normalize"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(mx.image.copyMakeBorder(_img0(), 1, 2, 3, 4, values=(10, 20, 30)).asnumpy(),
                                  EXPECTED["border_const"])
    np.testing.assert_array_equal(mx.image.copyMakeBorder(_img0(), 2, 1, 0, 3, type=1).asnumpy(),
                                  EXPECTED["border_reflect"])
    for src, size, expected in CASES["scale_down"]:
        assert list(mx.image.scale_down(tuple(src), tuple(size))) == expected


# ----- augmenters -----

def test_random_crops_in_bounds_and_seeded():
    img = _img0()
    random.seed(3)
    first = [mx.image.random_crop(img, (20, 16)) for _ in range(5)]
    random.seed(3)
    second = [mx.image.random_crop(img, (20, 16)) for _ in range(5)]
    for (a, ra), (b, rb) in zip(first, second):
        assert ra == rb
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
        x, y, w, h = ra
        assert (w, h) == (20, 16) and 0 <= x <= 40 - w and 0 <= y <= 30 - h
        np.testing.assert_array_equal(a.asnumpy(), img.asnumpy()[y:y + h, x:x + w])
    for _ in range(20):
        out, (x, y, w, h) = mx.image.random_size_crop(img, (16, 16), 0.3, (0.75, 1.333))
        assert out.shape == (16, 16, 3) and x + w <= 40 and y + h <= 30 and w * h >= 0.3 * 1200 * 0.5


def test_flip_is_exact_mirror_and_probability():
    img = _img0()
    flipped = mx.image.HorizontalFlipAug(1.0)(img)
    np.testing.assert_array_equal(flipped.asnumpy(), img.asnumpy()[:, ::-1])
    assert mx.image.HorizontalFlipAug(0.0)(img) is img
    random.seed(0)
    aug = mx.image.HorizontalFlipAug(0.5)
    flips = sum(not np.array_equal(aug(img).asnumpy(), img.asnumpy()) for _ in range(400))
    assert 150 < flips < 250


def test_color_augmenters_structure():
    img = mx.image.CastAug()(_img0())
    x = img.asnumpy()
    assert img.dtype == np.float32
    random.seed(1)
    for aug in (mx.image.BrightnessJitterAug(0.3), mx.image.ContrastJitterAug(0.3), mx.image.SaturationJitterAug(0.3),
                mx.image.HueJitterAug(0.2), mx.image.ColorJitterAug(0.2, 0.2, 0.2), mx.image.RandomGrayAug(1.0)):
        out = aug(img).asnumpy()
        assert out.shape == x.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    # brightness is a scale of the whole image by a factor within [0.7, 1.3]
    out = mx.image.BrightnessJitterAug(0.3)(img).asnumpy()
    ratio = out[x > 0] / x[x > 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and 0.7 <= ratio[0] <= 1.3
    # saturation keeps the gray level of every pixel; gray gives equal channels
    coef = np.array([0.299, 0.587, 0.114], np.float32)
    out = mx.image.SaturationJitterAug(0.5)(img).asnumpy()
    np.testing.assert_allclose(out @ coef, x @ coef, rtol=1e-4, atol=1e-3)
    gray = mx.image.RandomGrayAug(1.0)(img).asnumpy()
    np.testing.assert_allclose(gray[..., 0], x @ np.array([0.21, 0.72, 0.07], np.float32), rtol=1e-5, atol=1e-3)
    assert np.array_equal(gray[..., 0], gray[..., 2])
    # hue rotation by 0 is (up to the YIQ round trip) the identity
    np.testing.assert_allclose(mx.image.HueJitterAug(1e-12)(img).asnumpy(), x, atol=1.0)
    np.random.seed(0)
    light = mx.image.LightingAug(0.1, np.array([55.46, 4.794, 1.148]), np.eye(3))(img).asnumpy()
    shift = light - x
    assert np.allclose(shift, shift[0, 0], atol=1e-4)
    with pytest.raises(MXNetError, match="float image"):
        mx.image.BrightnessJitterAug(0.3)(_img0())


def test_create_augmenter_list_and_dumps():
    augs = mx.image.CreateAugmenter((3, 20, 20), resize=24, rand_crop=True, rand_mirror=True, mean=True, std=True,
                                    brightness=0.1, hue=0.1, pca_noise=0.1, rand_gray=0.1)
    names = [type(a).__name__ for a in augs]
    assert names == ["ResizeAug", "RandomCropAug", "HorizontalFlipAug", "CastAug", "ColorJitterAug", "HueJitterAug",
                     "LightingAug", "RandomGrayAug", "ColorNormalizeAug"]
    assert json.loads(augs[0].dumps()) == ["resizeaug", {"size": 24, "interp": 2}]
    random.seed(5)
    out = mx.image.SequentialAug(augs)(_img0())
    assert out.shape == (20, 20, 3) and out.dtype == np.float32
    assert [type(a).__name__ for a in mx.image.CreateAugmenter((3, 8, 8), rand_crop=True, rand_resize=True)] == \
        ["RandomSizedCropAug", "CastAug"]
    with pytest.raises(MXNetError, match="mean"):
        mx.image.CreateAugmenter((3, 8, 8), mean=[1, 2, 3])


# ----- ImageIter -----

def _iter_kwargs(case):
    info = CASES["imageiter"][case]
    kwargs = dict(info["options"])
    kwargs["data_shape"] = tuple(kwargs["data_shape"])
    paths = info["kwargs_paths"]
    if "path_imgrec" in paths:
        kwargs["path_imgrec"] = os.path.join(FIX, "images2.rec" if info["rec2"] else "images.rec")
    if "path_imgidx" in paths:
        kwargs["path_imgidx"] = os.path.join(FIX, "images.idx")
    if "path_imglist" in paths:
        kwargs.update(path_imglist=os.path.join(FIX, "images.lst"), path_root=FIX)
    return info, kwargs


def _epochs(it, count=2):
    out = []
    for e in range(count):
        if e:
            it.reset()
        out.append([(b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad) for b in it])
    return out


@pytest.mark.parametrize("case", sorted(CASES["imageiter"]))
def test_image_iter_matches_mxnet(case):
    info, kwargs = _iter_kwargs(case)
    got = _epochs(mx.image.ImageIter(**kwargs))
    assert [[b[2] for b in epoch] for epoch in got] == [[b["pad"] for b in epoch] for epoch in info["epochs"]]
    for e, epoch in enumerate(got):
        for b, (data, label, _) in enumerate(epoch):
            # CreateAugmenter resizes and crops bicubically (inter_method=2); mean/std True divide by ~57
            level = 1.0 / 57.12 if info["options"].get("std") else 1.0
            _pixels(data, EXPECTED["iter_%s_%d_%d_data" % (case, e, b)], cubic=True, level=level)
            np.testing.assert_array_equal(label, EXPECTED["iter_%s_%d_%d_label" % (case, e, b)])


def test_image_iter_random_augmentation_reproducible():
    kwargs = dict(batch_size=3, data_shape=(3, 16, 16), path_imgrec=os.path.join(FIX, "images.rec"),
                  path_imgidx=os.path.join(FIX, "images.idx"), shuffle=True, rand_crop=True, rand_mirror=True)
    random.seed(11)
    first = _epochs(mx.image.ImageIter(**kwargs), 1)
    random.seed(11)
    second = _epochs(mx.image.ImageIter(**kwargs), 1)
    for (d1, l1, _), (d2, l2, _) in zip(first[0], second[0]):
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(l1, l2)
    labels = np.concatenate([l for _, l, _ in first[0]])
    assert sorted(labels[:7].tolist()) == sorted([i % 3 for i in range(7)])
    assert all(d.min() >= 0 and d.max() <= 255 for d, _, _ in first[0])


def test_image_iter_imglist_and_errors():
    it = mx.image.ImageIter(2, (3, 16, 16), imglist=[[1.0, "img0.jpg"], [2.0, "img3.png"]], path_root=FIX)
    batch = it.next()
    np.testing.assert_array_equal(batch.label[0].asnumpy(), [1.0, 2.0])
    assert batch.data[0].shape == (2, 3, 16, 16)
    with pytest.raises(MXNetError, match="path_imgrec"):
        mx.image.ImageIter(2, (3, 16, 16))
    with pytest.raises(ValueError, match="3 channels"):
        mx.image.ImageIter(2, (1, 16, 16), path_imgrec=os.path.join(FIX, "images.rec"))


# ----- ImageRecordIter -----

def _rec_kwargs(case):
    info = CASES["rec"][case]
    kwargs = dict(info["options"], path_imgrec=os.path.join(FIX, info["rec"] + ".rec"))
    if info["idx"]:
        kwargs["path_imgidx"] = os.path.join(FIX, info["rec"] + ".idx")
    if info["imglist"]:
        kwargs["path_imglist"] = os.path.join(FIX, "images.lst")
    return info, kwargs


@pytest.mark.parametrize("case", sorted(CASES["rec"]))
def test_image_record_iter_matches_mxnet(case):
    info, kwargs = _rec_kwargs(case)
    it = mx.io.ImageRecordIter(**kwargs)
    assert list(it.provide_data[0].shape) == info["provide_data"]
    assert list(it.provide_label[0].shape) == info["provide_label"]
    got = _epochs(it)
    assert [[b[2] for b in epoch] for epoch in got] == [[b["pad"] for b in epoch] for epoch in info["epochs"]]
    for e, epoch in enumerate(got):
        for b, (data, label, _) in enumerate(epoch):
            want_data = EXPECTED["rec_%s_%d_%d_data" % (case, e, b)]
            want_label = EXPECTED["rec_%s_%d_%d_label" % (case, e, b)]
            rows = data.shape[0]
            if not info["options"].get("round_batch", True) and b == len(epoch) - 1:
                rows = 7 % info["options"]["batch_size"] or rows    # the unused rows are stale, in both
            # JPEG and PNG decode alike here: one level of the pixels, times the scale/std of the case
            opts = info["options"]
            level = opts.get("scale", 1.0) / min(opts.get(k, 1.0) for k in ("std_r", "std_g", "std_b"))
            if info["options"].get("rotate", 90) % 90:
                # warpAffine's bilinear weights differ between OpenCV builds: within one level inside, up to 3
                # where the rotated corners blend with fill_value
                diff = np.abs(data.astype(int) - want_data.astype(int))
                assert diff.max() <= 3 and diff[:, :, 3:-3, 3:-3].max() <= 1
            else:
                _pixels(data[:rows], want_data[:rows], info["options"].get("inter_method") == 2, level)
            np.testing.assert_array_equal(label[:rows], want_label[:rows])


def test_image_record_iter_random_options():
    kwargs = dict(path_imgrec=os.path.join(FIX, "images.rec"), data_shape=(3, 20, 20), batch_size=7,
                  rand_crop=True, rand_mirror=True, seed=4, preprocess_threads=3, dtype="uint8")
    a = mx.io.ImageRecordIter(**kwargs).next().data[0].asnumpy()
    b = mx.io.ImageRecordIter(**kwargs).next().data[0].asnumpy()
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8
    plain = mx.io.ImageRecordIter(**dict(kwargs, rand_crop=False, rand_mirror=False)).next().data[0].asnumpy()
    mirrored = mx.io.ImageRecordIter(**dict(kwargs, rand_crop=False, rand_mirror=False, mirror=True)).next()
    np.testing.assert_array_equal(mirrored.data[0].asnumpy(), plain[:, :, :, ::-1])
    # every random crop is a window of the decoded image (or its mirror)
    for i, name in enumerate(IMAGES):
        full = EXPECTED["decode_%d" % i].transpose(2, 0, 1)
        crop = a[i]
        found = any(np.array_equal(crop, full[:, y:y + 20, x:x + 20]) or
                    np.array_equal(crop, full[:, y:y + 20, x:x + 20][:, :, ::-1])
                    for y in range(full.shape[1] - 19) for x in range(full.shape[2] - 19))
        assert found, name
    shuffled = mx.io.ImageRecordIter(path_imgrec=os.path.join(FIX, "images.rec"), path_imgidx=os.path.join(
        FIX, "images.idx"), data_shape=(3, 20, 20), batch_size=7, shuffle=True, seed=1).next().label[0].asnumpy()
    assert sorted(shuffled.tolist()) == sorted(float(i % 3) for i in range(7))


def test_image_record_iter_color_augmentations():
    """brightness/contrast/saturation, random_h/s/l, pca_noise and random rotation/scale: shapes, uint8 range,
    seeds reproduce, and each changes the pixels of the plain center crop."""
    base = dict(path_imgrec=os.path.join(FIX, "images.rec"), data_shape=(3, 20, 20), batch_size=7, dtype="uint8",
                seed=2, preprocess_threads=2)
    plain = mx.io.ImageRecordIter(**base).next().data[0].asnumpy()
    for extra in (dict(brightness=0.4), dict(contrast=0.4), dict(saturation=0.4), dict(random_h=20, random_s=30,
                  random_l=30), dict(pca_noise=0.5), dict(max_rotate_angle=20, max_shear_ratio=0.1,
                  max_random_scale=1.2, min_random_scale=0.9, max_aspect_ratio=0.2, fill_value=127)):
        first = mx.io.ImageRecordIter(**base, **extra).next().data[0].asnumpy()
        again = mx.io.ImageRecordIter(**base, **extra).next().data[0].asnumpy()
        other = mx.io.ImageRecordIter(**dict(base, seed=3), **extra).next().data[0].asnumpy()
        assert first.shape == plain.shape and first.dtype == np.uint8
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, plain) and not np.array_equal(first, other), extra
    # brightness alone scales every pixel of an image by one factor (rounded)
    bright = mx.io.ImageRecordIter(**base, brightness=0.4).next().data[0].asnumpy().astype(float)
    for img, ref in zip(bright, plain.astype(float)):
        mask = (ref > 40) & (img < 255)
        ratio = img[mask] / ref[mask]
        assert np.ptp(ratio) < 0.05 and 0.6 - 0.02 <= ratio.mean() <= 1.4 + 0.02


def test_image_record_iter_random_resized_crop():
    base = dict(path_imgrec=os.path.join(FIX, "images.rec"), data_shape=(3, 20, 20), batch_size=7, dtype="uint8",
                random_resized_crop=True, max_random_area=1.0, seed=5)
    # an area of (almost) the whole image with aspect ratio 1: the square image 3 (36x36) is resized whole
    whole = mx.io.ImageRecordIter(**base, min_random_area=0.999, min_aspect_ratio=1.0, max_aspect_ratio=1.0)
    data = whole.next().data[0].asnumpy()
    want = cv2.resize(EXPECTED["decode_3"], (20, 20), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_array_equal(data[3], want)
    a = mx.io.ImageRecordIter(**base, min_random_area=0.08, min_aspect_ratio=0.75, max_aspect_ratio=1.33)
    b = mx.io.ImageRecordIter(**base, min_random_area=0.08, min_aspect_ratio=0.75, max_aspect_ratio=1.33)
    first = a.next().data[0].asnumpy()
    np.testing.assert_array_equal(first, b.next().data[0].asnumpy())
    assert first.shape == (7, 3, 20, 20) and not np.array_equal(first, data)
    with pytest.raises(MXNetError, match="conflicts"):
        mx.io.ImageRecordIter(**base, rand_crop=True)


def test_image_record_iter_errors():
    rec = os.path.join(FIX, "images.rec")
    with pytest.raises(MXNetError, match="unknown option.*bogus"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 8, 8), batch_size=2, bogus=1)
    with pytest.raises(MXNetError, match="max_crop_size"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 8, 8), batch_size=2, max_crop_size=10)
    with pytest.raises(MXNetError, match="inter_method 0"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 8, 8), batch_size=2, rotate=10, inter_method=0)
    with pytest.raises(MXNetError, match="3-channel"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(1, 8, 8), batch_size=2, random_h=10)
    with pytest.raises(MXNetError, match="data_shape"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(2, 8, 8), batch_size=2)
    with pytest.raises(MXNetError, match="does not exist"):
        mx.io.ImageRecordIter(path_imgrec=rec + ".missing", data_shape=(3, 8, 8), batch_size=2)
    with pytest.raises(MXNetError, match="label_width"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 8, 8), batch_size=2, label_width=2).next()
    with pytest.raises(MXNetError, match="bigger than the batch size"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 8, 8), batch_size=20).next()


def test_onnxsym_imports_without_cv2():
    code = ("import sys; sys.modules['cv2'] = None\n"
            "import onnxsym as mx\n"
            "try:\n    mx.image.imdecode(b'x')\nexcept mx.image.ImageCodecMissing as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "opencv-python-headless" in out.stdout


@pytest.mark.parametrize("dtype", ["int32", "float32", "int64", "float64"])
def test_image_iter_last_batch_handles(dtype, tmp_path):
    """MXNet's test_image.py::test_imageiter flow (16 images, batch 3) on the fixture images."""
    names = [IMAGES[i % len(IMAGES)] for i in range(16)]
    imglist = [[i % 5, name] for i, name in enumerate(names)]
    lst = tmp_path / "list.lst"
    lst.write_text("".join("%d\t%d\t%s\n" % (k, k % 5, name) for k, name in enumerate(names)))
    for source in ({"imglist": imglist}, {"path_imglist": str(lst)}):
        def make(batch_size, **kwargs):
            return mx.image.ImageIter(batch_size, (3, 16, 16), path_root=FIX, dtype=dtype, **source, **kwargs)
        it = make(2)
        for _ in range(3):
            assert all(b.data[0].shape == (2, 3, 16, 16) for b in it)
            it.reset()
        assert sum(1 for _ in make(3, last_batch_handle="discard")) == 5
        batches = [b.data[0].asnumpy() for b in make(3, last_batch_handle="pad")]
        assert len(batches) == 6
        np.testing.assert_array_equal(batches[0][:2], batches[5][1:])
        it = make(3, last_batch_handle="roll_over")
        batches = [b.data[0].asnumpy() for b in it]
        assert len(batches) == 5
        it.reset()
        first = it.next()
        np.testing.assert_array_equal(first.data[0].asnumpy()[1], batches[0][0])
        assert first.pad == 2
        for _ in it:
            pass
        it.reset()
        twice = it.next()
        np.testing.assert_array_equal(twice.data[0].asnumpy()[2], batches[0][0])
        assert twice.pad == 1
        assert 1 + sum(1 for _ in it) == 6
        assert sum(1 for _ in make(3, shuffle=True)) == 6


def test_imrotate():
    """MXNet's test_imrotate: a 6 degree rotation of a linear ramp matches scipy's bilinear rotation inside."""
    xlin = np.expand_dims(np.linspace(0, 0.5, 30), axis=1)
    ylin = np.expand_dims(np.linspace(0, 0.5, 60), axis=0)
    img = np.expand_dims(xlin + ylin, axis=2).astype(np.float32)
    rot = mx.image.imrotate(mx.nd.array(img.transpose(2, 0, 1)), 6).asnumpy().transpose(1, 2, 0)
    # rotating a linear ramp f(y, x) = a y + b x about the center (14.5, 29.5) counter-clockwise by t degrees
    # (scipy.ndimage.rotate(axes=(1, 0)), order 1) samples f at the rotated coordinates: itself linear
    t = np.deg2rad(6)
    y, x = np.mgrid[0:30, 0:60].astype(np.float64)
    yc, xc = y - 14.5, x - 29.5
    ys = xc * np.sin(t) + yc * np.cos(t) + 14.5
    xs = xc * np.cos(t) - yc * np.sin(t) + 29.5
    want = ys * 0.5 / 29 + xs * 0.5 / 59
    np.testing.assert_allclose(rot[10:20, 20:40, 0], want[10:20, 20:40], atol=1e-4)
    batch = mx.nd.array(np.random.uniform(0, 1, (5, 3, 30, 60)).astype(np.float32))
    for zoom in ({}, {"zoom_in": True}, {"zoom_out": True}):
        assert mx.image.imrotate(batch, mx.nd.array([1, 2, 3, 4, 5]), **zoom).shape == (5, 3, 30, 60)
    np.testing.assert_allclose(mx.image.imrotate(batch, 0).asnumpy()[:, :, 1:-1, 1:-1],
                               batch.asnumpy()[:, :, 1:-1, 1:-1], atol=1e-5)
    with pytest.raises(ValueError):
        mx.image.imrotate(batch, 3, zoom_in=True, zoom_out=True)
    with pytest.raises(TypeError):
        mx.image.imrotate(batch[0], mx.nd.array([1, 2]))
    assert mx.image.random_rotate(batch, [-5, 5]).shape == (5, 3, 30, 60)


def test_image_record_iter_bad_records(tmp_path):
    rec_path = str(tmp_path / "bad.rec")
    rec = mx.recordio.MXRecordIO(rec_path, "w")
    rec.write(mx.recordio.pack(mx.recordio.IRHeader(0, 1.0, 5, 0), _bytes("img0.jpg")))
    rec.write(mx.recordio.pack(mx.recordio.IRHeader(0, 2.0, 6, 0), b"not an image at all"))
    rec.close()
    it = mx.io.ImageRecordIter(path_imgrec=rec_path, data_shape=(3, 8, 8), batch_size=2, preprocess_threads=2)
    with pytest.raises(MXNetError, match="image index 6 .* not an image"):
        it.next()
    with open(rec_path, "r+b") as f:
        f.seek(4)
        f.write(b"\xff\xff\xff\x1f")        # the first record claims more bytes than the file holds
    with pytest.raises(MXNetError, match="past the end"):
        mx.io.ImageRecordIter(path_imgrec=rec_path, data_shape=(3, 8, 8), batch_size=2).next()
