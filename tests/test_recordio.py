"""mx.recordio against files MXNet 1.9.1 wrote (tests/fixtures/make_recordio_fixtures.py): onnxsym reads them
record for record and writes the same bytes; damaged files and index lines give one MXNetError naming the file and
the byte offset; `onnxsym im2rec` makes .lst files and packs them as MXNet's tools/im2rec.py does."""
import io
import json
import multiprocessing
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
# (not through sys.path: tests/fixtures/mxnet would then import as the package `mxnet`)
from .fixtures.recordio_cases import IM2REC_LISTS, IM2REC_TREE, KEYS, MAGIC, MULTI_LABEL_LST, PACK_CASES, \
    RECORDS  # noqa: E402

RECORDED = os.path.join(FIXTURES, "mxnet")
MX_REC, MX_IDX = os.path.join(RECORDED, "recordio.rec"), os.path.join(RECORDED, "recordio.idx")
with open(os.path.join(RECORDED, "recordio.json")) as _handle:
    MX = json.load(_handle)
with open(os.path.join(RECORDED, "im2rec.json")) as _handle:
    MX_IM2REC = json.load(_handle)                      # what MXNet's tools/im2rec.py wrote for IM2REC_TREE
PACKED = [bytes.fromhex(h) for h in MX["packed"]]        # what MXNet's pack gave for PACK_CASES
ALL_RECORDS = RECORDS + PACKED                          # the records of MXNet's recordio.rec, in order


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def read_all(path, limit=1000):
    """Every record of a .rec file, in order (a bounded loop: a reader that never ends fails the test)."""
    reader = mx.recordio.MXRecordIO(path, "r")
    try:
        records = []
        for _ in range(limit):
            record = reader.read()
            if record is None:
                return records
            records.append(record)
        raise AssertionError("%s: no end after %d records" % (path, limit))
    finally:
        reader.close()


# ----- MXNet's files -----

def test_reads_the_records_mxnet_wrote():
    assert read_all(MX_REC) == ALL_RECORDS
    reader = mx.recordio.MXIndexedRecordIO(MX_IDX, MX_REC, "r")
    assert reader.keys == KEYS == MX["keys"]
    assert reader.idx == dict(zip(KEYS, MX["tells"]))
    for key, record in reversed(list(zip(KEYS, ALL_RECORDS))):
        assert reader.read_idx(key) == record
    assert reader.read_idx(KEYS[-1]) == ALL_RECORDS[-1] and reader.read() is None
    reader.close()


def test_writes_the_bytes_mxnet_wrote(tmp_path):
    rec, idx = str(tmp_path / "out.rec"), str(tmp_path / "out.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    tells = []
    for key, record in zip(KEYS, ALL_RECORDS):
        tells.append(writer.tell())
        writer.write_idx(key, record)
    writer.close()
    assert tells == MX["tells"]
    assert read_bytes(rec) == read_bytes(MX_REC) and read_bytes(idx) == read_bytes(MX_IDX)
    plain = str(tmp_path / "plain.rec")
    writer = mx.recordio.MXRecordIO(plain, "w")
    for record in ALL_RECORDS:
        writer.write(bytearray(record))     # any bytes-like buffer
    del writer                              # closing on deletion flushes, as MXNet's tests rely on
    assert read_bytes(plain) == read_bytes(MX_REC)


def test_magic_words_split_records_as_dmlc_does(tmp_path):
    """The parts' cflags: an aligned magic word ends a part, an unaligned one stays in the payload."""
    path = str(tmp_path / "m.rec")
    writer = mx.recordio.MXRecordIO(path, "w")
    writer.write(b"ab" + MAGIC + b"cd" + MAGIC)     # magic at 2 (unaligned) and 8 (aligned)
    writer.write(MAGIC)
    writer.close()
    words = struct.unpack("<%dI" % (len(read_bytes(path)) // 4), read_bytes(path))
    magic = 0xCED7230A
    # part (cflag 1, 8 bytes) "ab"+MAGIC+"cd", part (cflag 3, 0 bytes); then (1, 0), (3, 0)
    assert words[0] == magic and words[1] == (1 << 29) | 8 and words[4] == magic and words[5] == (3 << 29)
    assert words[6:] == (magic, 1 << 29, magic, 3 << 29)
    assert read_all(path) == [b"ab" + MAGIC + b"cd" + MAGIC, MAGIC]


def test_pack_gives_mxnets_bytes_and_unpack_its_headers():
    for (header, payload), expected, fields in zip(PACK_CASES, PACKED, MX["unpacked"]):
        assert mx.recordio.pack(header, payload) == expected
        got, rest = mx.recordio.unpack(expected)
        assert rest == bytes.fromhex(fields["payload"])
        assert (got.flag, got.id, got.id2) == (fields["flag"], fields["id"], fields["id2"])
        if fields["flag"]:
            assert got.label.dtype == np.float32 and got.label.tolist() == fields["label"]
        else:
            assert got.label == fields["label"]
    assert mx.recordio.IRHeader(1, 2.0, 3, 4)._fields == ("flag", "label", "id", "id2")


def test_mxnet_spellings_resolve():
    assert mx.recordio is sys.modules["onnxsym.recordio"] and "recordio" in mx.__all__
    from onnxsym import compat
    assert "mxnet" not in sys.modules
    compat.install()
    try:
        import mxnet.recordio
        assert mxnet.recordio is mx.recordio
    finally:
        compat.uninstall()


# ----- the life of a record file -----

def test_reset_pickle_and_processes(tmp_path):
    rec, idx = str(tmp_path / "a.rec"), str(tmp_path / "a.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    for i in range(3):
        writer.write_idx(i, b"record_%d" % i)
    writer.close()
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    assert reader.read() == b"record_0"
    reader.reset()
    assert reader.read() == b"record_0"
    copy = pickle.loads(pickle.dumps(reader))
    assert not reader.is_open                                   # MXNet closes the pickled record
    assert copy.is_open and copy.read() == b"record_0" and copy.read_idx(2) == b"record_2"
    assert copy.keys == [0, 1, 2] and copy.fidx is not None
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(copy, queue))
    child.start()
    child.join(60)
    assert queue.get(timeout=10) == ("RuntimeError", b"record_1")
    closed = mx.recordio.MXRecordIO(rec, "r")
    closed.close()
    with pytest.raises(MXNetError, match="is closed"):
        closed.read()


def _in_child(record, queue):
    try:
        record.read()
        first = "no error"
    except RuntimeError:
        first = "RuntimeError"              # the parent's file position is not this process's to move
    queue.put((first, record.read_idx(1)))  # read_idx reopens the file in the new process


def test_reset_truncates_a_writer_and_reads_continue_after_the_end(tmp_path):
    rec, idx = str(tmp_path / "a.rec"), str(tmp_path / "a.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    writer.write_idx(0, b"gone")
    writer.reset()
    assert writer.tell() == 0
    writer.write_idx(5, b"kept")
    writer.close()
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    assert reader.keys == [5] and reader.read() == b"kept" and reader.read() is None
    # MXNet's reader stays at its end after a seek (read_idx gives None); onnxsym's reads the record
    assert reader.read_idx(5) == b"kept"


def test_string_keys(tmp_path):
    rec, idx = str(tmp_path / "a.rec"), str(tmp_path / "a.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w", key_type=str)
    writer.write_idx("cat/1.jpg", b"x")
    writer.write_idx("dog/2.jpg", b"yy")
    writer.close()
    assert read_bytes(idx) == b"cat/1.jpg\t0\ndog/2.jpg\t12\n"
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r", key_type=str)
    assert reader.read_idx("dog/2.jpg") == b"yy"


def test_usage_errors(tmp_path):
    missing = str(tmp_path / "missing.rec")
    with pytest.raises(MXNetError, match="cannot open '%s' for reading: No such file" % missing):
        mx.recordio.MXRecordIO(missing, "r")
    with pytest.raises(ValueError, match="Invalid flag a"):
        mx.recordio.MXRecordIO(missing, "a")
    with pytest.raises(MXNetError, match="only local files"):
        mx.recordio.MXRecordIO("s3://bucket/x.rec", "r")
    writer = mx.recordio.MXRecordIO(str(tmp_path / "a.rec"), "w")
    with pytest.raises(TypeError, match="takes bytes, not str"):
        writer.write("text")
    writer.close()
    uri = mx.recordio.MXRecordIO("file://" + str(tmp_path / "a.rec"), "r")
    assert uri.read() is None
    with pytest.raises(FileNotFoundError):
        mx.recordio.MXIndexedRecordIO(str(tmp_path / "none.idx"), str(tmp_path / "a.rec"), "r")


def test_pack_and_unpack_errors():
    with pytest.raises(MXNetError, match="24-byte header, got 3 bytes"):
        mx.recordio.unpack(b"abc")
    with pytest.raises(MXNetError, match="announces 3 float32 labels .12 bytes. but only 4 bytes"):
        mx.recordio.unpack(struct.pack("<IfQQ", 3, 0, 0, 0) + b"abcd")
    with pytest.raises(MXNetError, match="label must be a number or an array"):
        mx.recordio.pack((0, ["a", None], 0, 0), b"")
    with pytest.raises(MXNetError, match="cannot store"):
        mx.recordio.pack((0, 1.0, -1, 0), b"")


# ----- damaged files -----

def write_file(tmp_path, data, name="bad.rec"):
    path = str(tmp_path / name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def part(cflag, payload, length=None):
    length = len(payload) if length is None else length
    return struct.pack("<II", 0xCED7230A, cflag << 29 | length) + payload + b"\0" * (-len(payload) % 4)


@pytest.mark.parametrize("data, first, message", [
    (part(0, b"abcd") + b"\x0a\x23", b"abcd", "truncated at byte offset 14 .a record header needs 8 bytes"),
    (part(0, b"abcd") + part(0, b"abcdefgh")[:13], b"abcd", "claims 8 bytes, past the end of the file .25 bytes"),
    (part(0, b"abcd") + b"\0" * 8, b"abcd",
     "no record at byte offset 12 .expected the magic word 0xced7230a, found 0x0"),
    (part(0, b"abcd") + part(1, b"ab"), b"abcd",
     "truncated at byte offset 24 .the record starting at byte offset 12 misses its last part"),
    (part(2, b"ab"), None,
     "the part at byte offset 0 has cflag 2 where a record's first part is expected .cflag 0 or 1"),
    (part(1, b"ab") + part(0, b"cd"), None,
     "the part at byte offset 12 has cflag 0 where a continuation is expected .cflag 2 or 3"),
    (part(5, b"ab"), None, "cflag 5 where a record's first part"),
    (part(0, b"", length=(1 << 29) - 1), None, "claims 536870911 bytes, past the end of the file .8 bytes"),
])
def test_damaged_files_name_file_and_offset(tmp_path, data, first, message):
    path = write_file(tmp_path, data)
    reader = mx.recordio.MXRecordIO(path, "r")
    if first is not None:
        assert reader.read() == first
    with pytest.raises(MXNetError, match="Invalid RecordIO file '%s': .*%s" % (path, message)):
        reader.read()


def test_every_truncation_and_corruption_of_mxnets_file_fails_cleanly(tmp_path):
    """Cut at every length and bytes overwritten: records read so far are MXNet's, then None or one MXNetError."""
    data = read_bytes(MX_REC)[:1400]            # the small records and the one of 1001 bytes
    boundaries = set(MX["tells"])
    rng = np.random.RandomState(0)
    cases = [data[:n] for n in range(len(data))]
    for _ in range(300):
        damaged = bytearray(data)
        for pos in rng.randint(0, len(data), size=rng.randint(1, 4)):
            damaged[pos] = rng.randint(256)
        cases.append(bytes(damaged))
    for number, case in enumerate(cases):
        path = write_file(tmp_path, case)
        reader = mx.recordio.MXRecordIO(path, "r")
        records = []
        try:
            for _ in range(len(ALL_RECORDS) + 1):
                record = reader.read()
                if record is None:
                    break
                records.append(record)
        except MXNetError as err:
            assert "Invalid RecordIO file '%s'" % path in str(err) and "byte offset" in str(err)
        else:
            assert number >= len(data) or len(case) in boundaries, len(case)   # a cut between records
        if number < len(data):
            assert records == ALL_RECORDS[:len(records)]
        reader.close()


@pytest.mark.parametrize("line, message", [
    ("7\n", "line 2 '7': expected 'key<TAB>offset'"),
    ("x\t8\n", "line 2 'x\\\\t8': invalid literal for int"),
    ("7\teight\n", "line 2 .*invalid literal for int"),
    ("7\t-4\n", "line 2 .*offset -4 is outside"),
    ("7\t8\t9\n", "line 2 .*expected 'key<TAB>offset'"),
    ("7\t4096\n", "line 2 .*offset 4096 is outside '.*bad.rec' .24 bytes"),
])
def test_bad_index_lines(tmp_path, line, message):
    rec = write_file(tmp_path, part(0, b"abcd") + part(0, b"e"))
    idx = write_file(tmp_path, b"0\t0\n" + line.encode() + b"\n", name="bad.idx")
    with pytest.raises(MXNetError, match="Invalid RecordIO index file '%s', %s" % (idx, message)):
        mx.recordio.MXIndexedRecordIO(idx, rec, "r")


def test_blank_index_lines_are_skipped(tmp_path):
    rec = write_file(tmp_path, part(0, b"abcd") + part(0, b"e"))
    idx = write_file(tmp_path, b"\n0\t0\n\n1\t12\n\n", name="ok.idx")
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    assert reader.keys == [0, 1] and reader.read_idx(1) == b"e"


# ----- images -----

def _codec_available():
    try:
        mx.recordio._codec()
        return True
    except ImportError:
        return False


def test_image_functions_say_what_to_install(monkeypatch):
    for name in ("cv2", "PIL", "PIL.Image"):
        monkeypatch.setitem(sys.modules, name, None)        # as if neither were installed
    header = mx.recordio.IRHeader(0, 1.0, 0, 0)
    for call in (lambda: mx.recordio.pack_img(header, np.zeros((2, 2, 3), np.uint8)),
                 lambda: mx.recordio.unpack_img(mx.recordio.pack(header, b"\x89PNG"))):
        with pytest.raises(ImportError, match="pip install opencv-python-headless .* or pip install Pillow") as err:
            call()
        assert isinstance(err.value, MXNetError)


def fake_cv2():
    """A stand-in for OpenCV's calls that MXNet's pack_img/unpack_img and im2rec make: images are .npy bytes,
    resize picks the nearest rows and columns of cv2.resize's (width, height); every call is logged."""
    cv2 = types.ModuleType("cv2")
    cv2.IMWRITE_JPEG_QUALITY, cv2.IMWRITE_PNG_COMPRESSION = 1, 16
    cv2.calls = []

    def decode(data):
        return np.load(io.BytesIO(data)) if data.startswith(b"\x93NUMPY") else None

    def imread(path, flag):
        cv2.calls.append(("imread", os.path.basename(path), flag))
        with open(path, "rb") as handle:
            return decode(handle.read())

    def imdecode(buf, flag):
        cv2.calls.append(("imdecode", flag))
        return decode(buf.tobytes())

    def imencode(fmt, img, params):
        cv2.calls.append(("imencode", fmt, list(params)))
        if fmt == ".fail":
            return False, None
        out = io.BytesIO()
        np.save(out, img)
        return True, np.frombuffer(out.getvalue(), np.uint8)

    def resize(img, size):
        width, height = size
        cv2.calls.append(("resize", size))
        return img[np.arange(height) * img.shape[0] // height][:, np.arange(width) * img.shape[1] // width]

    cv2.imread, cv2.imdecode, cv2.imencode, cv2.resize = imread, imdecode, imencode, resize
    return cv2


def npy_bytes(array):
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_image_functions_call_opencv_as_mxnet_does(monkeypatch):
    cv2 = fake_cv2()
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    img = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    header = mx.recordio.IRHeader(0, 2.0, 7, 0)
    for fmt, params in ((".jpg", [1, 80]), (".JPEG", [1, 80]), (".png", [16, 80]), (".bmp", [])):
        packed = mx.recordio.pack_img(header, img, quality=80, img_fmt=fmt)
        assert cv2.calls[-1] == ("imencode", fmt, params)
        assert mx.recordio.unpack(packed) == (header, npy_bytes(img))
    got_header, got = mx.recordio.unpack_img(packed, iscolor=0)
    assert cv2.calls[-1] == ("imdecode", 0) and got_header == header and np.array_equal(got, img)
    assert mx.recordio.unpack_img(mx.recordio.pack(header, b"not an image"))[1] is None
    with pytest.raises(MXNetError, match="OpenCV could not encode the image as .fail"):
        mx.recordio.pack_img(header, img, img_fmt=".fail")


@pytest.mark.skipif(not _codec_available(), reason="needs opencv-python-headless or Pillow")
def test_png_images_round_trip():
    img = np.random.RandomState(0).randint(0, 256, size=(5, 7, 3)).astype(np.uint8)
    packed = mx.recordio.pack_img(mx.recordio.IRHeader(0, [1, 2], 3, 0), img, quality=3, img_fmt=".png")
    header, back = mx.recordio.unpack_img(packed, iscolor=1)
    assert header.label.tolist() == [1, 2] and header.id == 3
    assert back.shape == (5, 7, 3) and np.array_equal(back, img)
    _, gray = mx.recordio.unpack_img(packed, iscolor=0)
    assert gray.shape == (5, 7)


# ----- onnxsym im2rec -----

def image_tree(tmp_path):
    root = tmp_path / "images"
    for relpath, data in IM2REC_TREE.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    return str(root)


def im2rec(capsys, *argv):
    from onnxsym import cli
    code = cli.main(["im2rec", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def written(folder):
    """What im2rec wrote, as the fixture records it: {name: text, or hex for .rec}."""
    return {path.name: path.read_bytes().hex() if path.suffix == ".rec" else path.read_text()
            for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("name, args", IM2REC_LISTS, ids=[name for name, _ in IM2REC_LISTS])
def test_im2rec_lists_are_mxnets(capsys, tmp_path, name, args):
    root = image_tree(tmp_path)
    out_dir = tmp_path / name
    out_dir.mkdir()
    code, out, err = im2rec(capsys, out_dir / name, root, *args)
    assert code == 0 and err == "", err
    expected = {k: v for k, v in MX_IM2REC["lists"][name].items() if k.endswith(".lst")}
    assert written(out_dir) == expected
    assert "wrote %s" % (out_dir / sorted(expected)[0]) in out
    if "--recursive" in args:
        assert "class 2: dog\n" in out and "class 0: .\n" in out


@pytest.mark.parametrize("threads", ["1", "3"])
def test_im2rec_pass_through_packs_mxnets_bytes(capsys, tmp_path, threads):
    root = image_tree(tmp_path)
    out_dir = tmp_path / "all"
    out_dir.mkdir()
    (out_dir / "all.lst").write_text(MX_IM2REC["lists"]["all"]["all.lst"])
    code, out, err = im2rec(capsys, out_dir / "all", root, "--pass-through", "--num-thread", threads)
    assert code == 0 and err == "", err
    assert written(out_dir) == MX_IM2REC["lists"]["all"]
    assert "(8 images)" in out and "done: 8 records" in out
    code, out, err = im2rec(capsys, out_dir, root, "--pass-through")     # PREFIX a folder: each of its lists
    assert code == 0 and written(out_dir) == MX_IM2REC["lists"]["all"]
    reader = mx.recordio.MXIndexedRecordIO(str(out_dir / "all.idx"), str(out_dir / "all.rec"), "r")
    for line in MX_IM2REC["lists"]["all"]["all.lst"].splitlines():
        index, label, relpath = line.split("\t")
        header, payload = mx.recordio.unpack(reader.read_idx(int(index)))
        assert payload == IM2REC_TREE[relpath] and header.label == float(label) and header.id == int(index)


@pytest.mark.parametrize("name, args", [("multi", []), ("multi_pack_label", ["--pack-label"])])
def test_im2rec_multi_label_lists(capsys, tmp_path, name, args):
    root = image_tree(tmp_path)
    out_dir = tmp_path / name
    out_dir.mkdir()
    (out_dir / (name + ".lst")).write_text(MULTI_LABEL_LST)
    code, out, err = im2rec(capsys, out_dir / name, root, "--pass-through", *args)
    assert code == 0 and err == "", err
    assert written(out_dir) == MX_IM2REC[name]


def test_im2rec_progress_skips_and_errors(capsys, tmp_path):
    root = image_tree(tmp_path)
    lst = tmp_path / "big.lst"
    good = "".join("%d\t%d\tcat/b.jpg\n" % (i, i % 3) for i in range(2500))
    lst.write_text(good + "2500\t0\tmissing.jpg\nnot a line\nx\t1\tcat/b.jpg\n")
    code, out, err = im2rec(capsys, tmp_path / "big", root, "--pass-through")
    assert code == 0 and err == "", err
    assert "  1000/2501 images" in out and "  2000/2501 images" in out
    assert "warning: %s line 2502 skipped: expected 'index<TAB>label(s)<TAB>path', got 1 fields" % lst in out
    assert "line 2503 skipped: invalid literal for int" in out
    assert "warning: missing.jpg skipped: [Errno 2] No such file or directory" in out
    assert "done: 2500 records" in out and "1 images skipped" in out
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / "big.idx"), str(tmp_path / "big.rec"), "r")
    assert len(reader.keys) == 2500 and mx.recordio.unpack(reader.read_idx(2499))[0].label == 2499 % 3


def test_im2rec_usage_errors(capsys, tmp_path, monkeypatch):
    root = image_tree(tmp_path)
    code, out, err = im2rec(capsys, tmp_path / "none", root, "--pass-through")
    assert code == 1 and "no list file %s*.lst (make one with: onnxsym im2rec" % (tmp_path / "none") in err
    code, out, err = im2rec(capsys, tmp_path / "x", tmp_path / "nowhere", "--list")
    assert code == 1 and "ROOT %s is not a folder" % (tmp_path / "nowhere") in err
    code, out, err = im2rec(capsys, tmp_path / "x", root, "--list", "--exts", ".bmp")
    assert code == 1 and "no files with extension .bmp in %s (--recursive also looks in its subfolders)" % root in err
    code, out, err = im2rec(capsys, tmp_path / "x", root, "--list", "--train-ratio", "0.8", "--test-ratio", "0.3")
    assert code == 1 and "their sum at most 1; got 0.8 and 0.3" in err
    assert not list(tmp_path.glob("x*"))
    (tmp_path / "y.lst").write_text("0\t0\tcat/b.jpg\n")
    monkeypatch.setitem(sys.modules, "cv2", None)
    code, out, err = im2rec(capsys, tmp_path / "y", root, "--resize", "32")
    assert code == 1 and len(err.splitlines()) == 1
    assert "without --pass-through decodes and re-encodes the images" in err and "opencv-python-headless" in err


def test_im2rec_survives_a_folder_link_cycle(capsys, tmp_path):
    root = image_tree(tmp_path)
    os.symlink(os.path.join(root, "dog"), os.path.join(root, "dog", "sub", "loop"))
    code, out, err = im2rec(capsys, tmp_path / "c", root, "--list", "--recursive", "--no-shuffle")
    assert code == 0, err
    assert (tmp_path / "c.lst").read_text() == MX_IM2REC["lists"]["split"]["split_test.lst"] + \
        MX_IM2REC["lists"]["split"]["split_train.lst"] + MX_IM2REC["lists"]["split"]["split_val.lst"]


def test_im2rec_re_encodes_with_opencv_as_mxnet_does(capsys, tmp_path, monkeypatch):
    cv2 = fake_cv2()
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    tall = np.arange(10 * 6 * 3, dtype=np.uint8).reshape(10, 6, 3)
    wide = np.arange(4 * 8 * 3, dtype=np.uint8).reshape(4, 8, 3)
    root = tmp_path / "images"
    root.mkdir()
    (root / "tall.jpg").write_bytes(npy_bytes(tall))
    (root / "wide.jpg").write_bytes(npy_bytes(wide))
    (root / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "p.lst").write_text("0\t0\ttall.jpg\n1\t1\twide.jpg\n2\t0\tbroken.jpg\n")

    def images(*args):
        cv2.calls.clear()
        code, out, err = im2rec(capsys, tmp_path / "p", root, *args)
        assert code == 0 and err == "", err
        assert "warning: broken.jpg skipped: OpenCV cannot read it as an image" in out
        reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / "p.idx"), str(tmp_path / "p.rec"), "r")
        return [np.load(io.BytesIO(mx.recordio.unpack(reader.read_idx(k))[1])) for k in (0, 1)]

    # center crop: the middle square, (10 - 6) // 2 = 2 rows off the tall image's top, 2 columns off the wide's left
    got = images("--center-crop", "--color", "0", "--encoding", ".png", "--quality", "3")
    assert np.array_equal(got[0], tall[2:8]) and np.array_equal(got[1], wide[:, 2:6])
    assert ("imread", "tall.jpg", 0) in cv2.calls and ("imencode", ".png", [16, 3]) in cv2.calls
    # --resize 3: the shorter edge becomes 3, the other scaled with floor division; cv2.resize takes (w, h)
    got = images("--resize", "3")
    assert ("resize", (3, 5)) in cv2.calls and ("resize", (6, 3)) in cv2.calls
    assert got[0].shape == (5, 3, 3) and got[1].shape == (3, 6, 3)
    assert ("imread", "wide.jpg", 1) in cv2.calls and ("imencode", ".jpg", [1, 95]) in cv2.calls
