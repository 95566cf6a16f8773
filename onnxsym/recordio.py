"""Read and write the RecordIO data format (mx.recordio): MXNet's .rec/.idx files, byte for byte.

    record = mx.recordio.MXIndexedRecordIO('data.idx', 'data.rec', 'w')
    record.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, 4.0, 0, 0), jpeg_bytes))
    record.close()
    header, payload = mx.recordio.unpack(mx.recordio.MXIndexedRecordIO('data.idx', 'data.rec', 'r').read_idx(0))

The file format is dmlc-core's recordio: each record is one or more parts, each part a little-endian uint32 magic
word 0xced7230a, a uint32 whose top 3 bits are the part's cflag and low 29 bits its length, then the bytes, padded
with zeros to a multiple of 4. The writer splits a record wherever its payload holds the magic word at a 4-byte
aligned position (the magic word itself is dropped and restored by the reader): cflag 0 is a whole record, 1 its
first part, 2 a middle part, 3 the last part. The .idx file has one line per record, "key<TAB>byte offset".

Records come from files that may be damaged or hostile: every read checks the magic word, the part sequence and the
lengths against the file's size, and a bad file raises one MXNetError naming the file and the byte offset.
"""
import numbers
import os
import struct
from collections import namedtuple

import numpy as np

from .base import MXNetError

__all__ = ["MXRecordIO", "MXIndexedRecordIO", "IRHeader", "pack", "unpack", "pack_img", "unpack_img"]

_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", _MAGIC)
_PART = struct.Struct("<II")             # magic word, cflag << 29 | length
_LENGTH_BITS = 29
_MAX_LENGTH = (1 << _LENGTH_BITS) - 1
_WHOLE, _FIRST, _MIDDLE, _LAST = 0, 1, 2, 3


def _padded(length):
    return (length + 3) & ~3


def _local_path(uri):
    """The file a dmlc URI names: a path, or file://path (other protocols need dmlc's filesystems)."""
    uri = os.fspath(uri)
    if isinstance(uri, bytes):
        uri = os.fsdecode(uri)
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if "://" in uri:
        raise MXNetError("RecordIO: only local files are supported, not '%s' (onnxsym reads and writes .rec files "
                         "on the local filesystem)" % uri)
    return uri


class MXRecordIO(object):
    """Reads/writes `RecordIO` data format, supporting sequential read and write.

    Examples
    --------
    >>> record = mx.recordio.MXRecordIO('tmp.rec', 'w')
    >>> for i in range(5):
    ...    record.write(b'record_%d' % i)
    >>> record.close()
    >>> record = mx.recordio.MXRecordIO('tmp.rec', 'r')
    >>> record.read()
    b'record_0'

    Parameters
    ----------
    uri : str
        Path to the record file.
    flag : str
        'w' for write or 'r' for read.
    """

    def __init__(self, uri, flag):
        self.uri = _local_path(uri)
        self.flag = flag
        self.pid = None
        self.is_open = False
        self._file = None
        self.open()

    def open(self):
        """Opens the record file ('w' creates it or truncates it to empty)."""
        if self.flag == "w":
            mode, self.writable = "wb", True
        elif self.flag == "r":
            mode, self.writable = "rb", False
        else:
            raise ValueError("Invalid flag %s" % self.flag)
        try:
            self._file = open(self.uri, mode)
        except OSError as err:
            raise MXNetError("RecordIO: cannot open '%s' for %s: %s" % (
                self.uri, "writing" if self.writable else "reading", err.strerror or err)) from None
        self._size = None if self.writable else os.fstat(self._file.fileno()).st_size
        self.pid = os.getpid()
        self.is_open = True

    def __del__(self):
        if getattr(self, "is_open", False):
            self.close()

    def __getstate__(self):
        """Pickling closes the file (as MXNet does); the copy reopens it when the original was open."""
        is_open = self.is_open
        self.close()
        state = dict(self.__dict__)
        state["is_open"] = is_open
        state.pop("_file", None)
        state.pop("_size", None)
        return state

    def __setstate__(self, state):
        was_open = state["is_open"]
        self.__dict__ = state
        self.is_open = False
        self._file = None
        if was_open:
            self.open()

    def _check_pid(self, allow_reset=False):
        """A file object must not be shared across processes: reopen it in a new one, or refuse."""
        if self.pid != os.getpid():
            if allow_reset:
                self.reset()
            else:
                raise RuntimeError("Forbidden operation in multiple processes")

    def _check_open(self):
        if not self.is_open:
            raise MXNetError("RecordIO: '%s' is closed (call open() or reset() first)" % self.uri)

    def close(self):
        """Closes the record file."""
        if not self.is_open:
            return
        self._file.close()
        self._file = None
        self.is_open = False
        self.pid = None

    def reset(self):
        """Resets the pointer to the first item; with 'w' this truncates the file to empty.

        >>> record = mx.recordio.MXRecordIO('tmp.rec', 'r')
        >>> record.read(); record.reset(); record.read()    # the first record twice
        """
        self.close()
        self.open()

    def write(self, buf):
        """Inserts a bytes buffer as a record.

        >>> record = mx.recordio.MXRecordIO('tmp.rec', 'w')
        >>> record.write(b'record_0')
        """
        assert self.writable
        self._check_open()
        self._check_pid(allow_reset=False)
        if isinstance(buf, str):
            raise TypeError("MXRecordIO.write takes bytes, not str (encode the text first, e.g. "
                            "text.encode('utf-8'))")
        data = memoryview(buf).cast("B")
        if len(data) > _MAX_LENGTH:
            raise MXNetError("RecordIO only accepts records smaller than 2^29 bytes, got %d bytes for '%s'"
                             % (len(data), self.uri))
        self._file.write(_encode(bytes(data)))

    def read(self):
        """Returns the next record as bytes, or None at the end of the file.

        >>> record = mx.recordio.MXRecordIO('tmp.rec', 'r')
        >>> record.read()
        b'record_0'
        """
        assert not self.writable
        self._check_open()
        # reading one file object from several processes is forbidden: their positions would interleave
        self._check_pid(allow_reset=False)
        return _read_record(self._file, self.uri, self._file_size)

    def _file_size(self, needed):
        """The file's size, looked up again when a record reaches past the size known (a file still written)."""
        if needed > self._size:
            self._size = os.fstat(self._file.fileno()).st_size
        return self._size


def _encode(data):
    """The bytes of one record: parts split at the 4-byte-aligned magic words of `data`, then zero padding."""
    parts = []
    start = 0
    found = data.find(_MAGIC_BYTES)
    aligned_end = len(data) & ~3
    while 0 <= found < aligned_end:
        if found % 4:
            found = data.find(_MAGIC_BYTES, found + 1)
            continue
        parts.append(_PART.pack(_MAGIC, (_FIRST if start == 0 else _MIDDLE) << _LENGTH_BITS | (found - start)))
        parts.append(data[start:found])
        start = found + 4
        found = data.find(_MAGIC_BYTES, start)
    parts.append(_PART.pack(_MAGIC, (_LAST if start else _WHOLE) << _LENGTH_BITS | (len(data) - start)))
    parts.append(data[start:])
    parts.append(b"\0" * (_padded(len(data)) - len(data)))
    return b"".join(parts)


def _read_record(handle, path, file_size):
    """The next record of an open .rec file, None at its end; MXNetError on a damaged or truncated file."""
    start = handle.tell()
    pieces = []
    while True:
        offset = handle.tell()
        head = handle.read(_PART.size)
        if not head and not pieces:
            return None
        if len(head) < _PART.size:
            raise MXNetError("Invalid RecordIO file '%s': truncated at byte offset %d (%s)" % (
                path, offset + len(head), "a record header needs 8 bytes" if head else
                "the record starting at byte offset %d misses its last part" % start))
        magic, word = _PART.unpack(head)
        if magic != _MAGIC:
            raise MXNetError("Invalid RecordIO file '%s': no record at byte offset %d (expected the magic word "
                             "0x%08x, found 0x%08x)" % (path, offset, _MAGIC, magic))
        cflag, length = word >> _LENGTH_BITS, word & _MAX_LENGTH
        expected = (_WHOLE, _FIRST) if not pieces else (_MIDDLE, _LAST)
        if cflag not in expected:
            raise MXNetError("Invalid RecordIO file '%s': the part at byte offset %d has cflag %d where a %s is "
                             "expected (cflag %s)" % (path, offset, cflag, "record's first part" if not pieces
                                                     else "continuation", " or ".join(map(str, expected))))
        end = offset + _PART.size + _padded(length)
        if end > file_size(end):
            raise MXNetError("Invalid RecordIO file '%s': the part at byte offset %d claims %d bytes, past the end "
                             "of the file (%d bytes)" % (path, offset, length, file_size(end)))
        data = handle.read(_padded(length))
        if len(data) < _padded(length):
            raise MXNetError("Invalid RecordIO file '%s': truncated at byte offset %d" % (
                path, offset + _PART.size + len(data)))
        pieces.append(data[:length])
        if cflag in (_WHOLE, _LAST):
            return _MAGIC_BYTES.join(pieces)


class MXIndexedRecordIO(MXRecordIO):
    """Reads/writes `RecordIO` data format, supporting random access through an index file.

    Examples
    --------
    >>> record = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'w')
    >>> for i in range(5):
    ...     record.write_idx(i, b'record_%d' % i)
    >>> record.close()
    >>> record = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'r')
    >>> record.read_idx(3)
    b'record_3'

    Parameters
    ----------
    idx_path : str
        Path to the index file.
    uri : str
        Path to the record file. Only supports seekable file types.
    flag : str
        'w' for write or 'r' for read.
    key_type : type
        Data type for keys.
    """

    def __init__(self, idx_path, uri, flag, key_type=int):
        self.idx_path = idx_path
        self.idx = {}
        self.keys = []
        self.key_type = key_type
        self.fidx = None
        super().__init__(uri, flag)

    def open(self):
        super().open()
        self.idx = {}
        self.keys = []
        try:
            self.fidx = open(self.idx_path, self.flag)
        except OSError:
            super().close()
            raise
        if not self.writable:
            try:
                self._read_index()
            except BaseException:
                self.close()
                raise

    def _read_index(self):
        for number, line in enumerate(iter(self.fidx.readline, ""), 1):
            if not line.strip():
                continue
            fields = line.strip().split("\t")
            try:
                if len(fields) != 2:
                    raise ValueError("expected 'key<TAB>offset'")
                key = self.key_type(fields[0])
                position = int(fields[1])
                if not 0 <= position < self._size:
                    raise ValueError("offset %d is outside '%s' (%d bytes)" % (position, self.uri, self._size))
            except (ValueError, TypeError) as err:
                raise MXNetError("Invalid RecordIO index file '%s', line %d %r: %s" % (
                    self.idx_path, number, line.rstrip("\n")[:80], err)) from None
            self.idx[key] = position
            self.keys.append(key)

    def close(self):
        """Closes the record file and the index file."""
        if not self.is_open:
            return
        super().close()
        self.fidx.close()

    def __getstate__(self):
        state = super().__getstate__()
        state["fidx"] = None
        return state

    def seek(self, idx):
        """Sets the read position to the record of key `idx` (read_idx calls it)."""
        assert not self.writable
        self._check_pid(allow_reset=True)
        self._check_open()
        self._file.seek(self.idx[idx])

    def tell(self):
        """Returns the current position of the write head: the byte offset of the next record.

        >>> record = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'w')
        >>> record.tell()
        0
        """
        assert self.writable
        self._check_open()
        return self._file.tell()

    def read_idx(self, idx):
        """Returns the record of key `idx`.

        >>> record = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'r')
        >>> record.read_idx(3)
        b'record_3'
        """
        self.seek(idx)
        return self.read()

    def write_idx(self, idx, buf):
        """Inserts a record under key `idx` (the index file gets the line "key<TAB>offset").

        >>> record = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'w')
        >>> record.write_idx(0, b'record_0')
        """
        key = self.key_type(idx)
        pos = self.tell()
        self.write(buf)
        self.fidx.write("%s\t%d\n" % (str(key), pos))
        self.idx[key] = pos
        self.keys.append(key)


IRHeader = namedtuple("HEADER", ["flag", "label", "id", "id2"])
"""The header of an image record (MXNet's HEADER): metadata, such as labels, stored before the payload.

Parameters
----------
flag : int
    0 for a scalar `label`; the number of labels when `label` is an array (pack sets it).
label : float or an array of float
    The record's label(s).
id : int
    Usually a unique id of the record.
id2 : int
    Higher order bits of the unique id, usually 0.
"""
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)


def pack(header, s):
    """Pack a bytes payload with an IRHeader into an image record (the bytes MXRecordIO.write takes).

    A scalar ``header.label`` is stored in the header (flag 0); an array label is stored as float32 before the
    payload, with flag = its size.

    >>> header = mx.recordio.IRHeader(0, [1, 2, 3], 2574, 0)
    >>> packed = mx.recordio.pack(header, jpeg_bytes)
    """
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        header = header._replace(flag=0)
    else:
        try:
            label = np.asarray(header.label, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise MXNetError("recordio.pack: the label must be a number or an array of numbers, got %r (%s)"
                             % (header.label, err)) from None
        header = header._replace(flag=label.size, label=0)
        s = label.tobytes() + bytes(s)
    try:
        return struct.pack(_IR_FORMAT, *header) + bytes(s)
    except struct.error as err:
        raise MXNetError("recordio.pack: cannot store %s (flag and ids are unsigned integers of 32, 64 and 64 "
                         "bits, label a float32): %s" % (header, err)) from None


def unpack(s):
    """Unpack an image record into its IRHeader and payload (bytes).

    >>> header, payload = mx.recordio.unpack(record.read())
    >>> header
    HEADER(flag=0, label=14.0, id=20129312, id2=0)
    """
    if len(s) < _IR_SIZE:
        raise MXNetError("recordio.unpack: a record starts with a %d-byte header, got %d bytes" % (_IR_SIZE, len(s)))
    header = IRHeader(*struct.unpack(_IR_FORMAT, s[:_IR_SIZE]))
    s = s[_IR_SIZE:]
    if header.flag > 0:
        if len(s) < 4 * header.flag:
            raise MXNetError("recordio.unpack: the header announces %d float32 labels (%d bytes) but only %d bytes "
                             "follow it" % (header.flag, 4 * header.flag, len(s)))
        header = header._replace(label=np.frombuffer(s, np.float32, header.flag))
        s = s[header.flag * 4:]
    return header, s



# ----- images: the payload encoded by OpenCV (as MXNet) or Pillow -----

class ImageCodecMissing(MXNetError, ImportError):
    """pack_img/unpack_img need an image codec and neither OpenCV nor Pillow imports."""


def _codec():
    """('cv2', cv2) when OpenCV imports (MXNet's codec), else ('PIL', PIL.Image), else ImageCodecMissing."""
    try:
        import cv2  # lazy: optional dependency, imported only by the image functions
        return "cv2", cv2
    except ImportError:
        pass
    try:
        from PIL import Image  # lazy: optional dependency, imported only by the image functions
        return "PIL", Image
    except ImportError:
        pass
    raise ImageCodecMissing("recordio.pack_img/unpack_img encode and decode images and need an image library: "
                            "pip install opencv-python-headless (MXNet's codec) or pip install Pillow; "
                            "recordio.pack/unpack handle the encoded bytes without one")


def _swap_rgb(img):
    """BGR(A) <-> RGB(A): OpenCV's channel order, which MXNet's images use, and Pillow's."""
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return np.ascontiguousarray(np.concatenate([img[..., 2::-1], img[..., 3:]], axis=2))
    return img


def unpack_img(s, iscolor=-1):
    """Unpack an image record into its IRHeader and the decoded image (uint8 numpy array, BGR as OpenCV gives).

    iscolor is OpenCV's imdecode flag: 1 a 3-channel color image, 0 grayscale (2-D), -1 the image as stored
    (with its alpha channel). The image is None when the payload is not an image the codec reads. Pillow's
    decoders may differ from OpenCV's by a few levels on JPEG pixels.

    >>> header, img = mx.recordio.unpack_img(record.read())
    """
    header, s = unpack(s)
    kind, codec = _codec()
    buf = np.frombuffer(s, dtype=np.uint8)
    if kind == "cv2":
        return header, codec.imdecode(buf, iscolor)
    import io  # lazy: only the Pillow path reads from a buffer
    try:
        image = codec.open(io.BytesIO(s))
        image.load()
    except Exception:       # Pillow's errors for a payload that is no image: OpenCV's answer is None
        return header, None
    if iscolor == 0:
        image = image.convert("L")
    elif iscolor > 0 or image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if iscolor < 0 and "A" in image.getbands() else "RGB")
    return header, _swap_rgb(np.asarray(image))


def pack_img(header, img, quality=95, img_fmt=".jpg"):
    """Encode an image (uint8 numpy array, BGR as OpenCV's) and pack it with `header` into an image record.

    quality is the JPEG quality (1-100) for '.jpg', or the PNG compression level (1-9) for '.png'.

    >>> packed = mx.recordio.pack_img(mx.recordio.IRHeader(0, 4, 2574, 0), img, img_fmt='.png')
    """
    kind, codec = _codec()
    fmt = img_fmt.upper()
    if kind == "cv2":
        params = ([codec.IMWRITE_JPEG_QUALITY, quality] if fmt in (".JPG", ".JPEG") else
                  [codec.IMWRITE_PNG_COMPRESSION, quality] if fmt == ".PNG" else [])
        ok, buf = codec.imencode(img_fmt, img, params)
        if not ok:
            raise MXNetError("recordio.pack_img: OpenCV could not encode the image as %s" % img_fmt)
        return pack(header, buf.tobytes())
    import io  # lazy: only the Pillow path writes to a buffer
    name = codec.registered_extensions().get(img_fmt.lower())
    if name is None:
        raise MXNetError("recordio.pack_img: Pillow has no encoder for '%s'" % img_fmt)
    options = ({"quality": quality} if name == "JPEG" else {"compress_level": quality} if name == "PNG" else {})
    image = codec.fromarray(_swap_rgb(np.asarray(img, dtype=np.uint8)))
    if name == "JPEG" and image.mode == "RGBA":
        image = image.convert("RGB")        # JPEG has no alpha: OpenCV drops it too
    out = io.BytesIO()
    image.save(out, format=name, **options)
    return pack(header, out.getvalue())
