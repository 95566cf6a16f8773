"""Writing files the way `open(path, 'w')` would, but atomically: every file onnxsym writes goes through here.

A write goes to a temporary file beside the target, named ``.<name>.onnxsym-tmp-<pid>-<token>``, which is
fsync'ed and renamed over the target, so a reader (or a writer killed with SIGKILL) only ever sees the old or
the new complete file. The result has the permissions `open` gives: a new file ``0o666 & ~umask``, an existing
file keeps its mode. Temporary files of writers that died are recognised by their dead pid and removed at the
next write of the same target.
"""
import errno
import os
import secrets
import stat

from .base import MXNetError

__all__ = ["atomic_write", "atomic_save"]

_TEMP_TAG = ".onnxsym-tmp-"
_NAME_KEPT = 200            # bytes of the target's name in the temp name (file names stop at 255 bytes)
_IN_FLIGHT = set()          # this process's temp files being written (its own pid does not make them live)


def atomic_write(path, data, mode="w"):
    """Write `data` (str for mode 'w', bytes for 'wb') to `path` atomically, as ``open(path, mode)`` would.

    Symbolic links are written through, as `open` does. Errors are the OSError `open` raises, naming `path`
    (never the temporary file): a folder that does not exist fails before anything is written.

    >>> atomic_write("model-symbol.json", symbol.tojson())
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_write mode must be 'w' or 'wb', got %r" % (mode,))
    path = os.fspath(path)
    payload = data.encode("utf-8") if mode == "w" else bytes(data)
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory (folder %s does not exist)" % folder, path)
    prefix = os.path.join(folder, "." + os.fsdecode(os.fsencode(name)[:_NAME_KEPT]) + _TEMP_TAG)
    temp = "%s%d-%s" % (prefix, os.getpid(), secrets.token_hex(4))
    _IN_FLIGHT.add(temp)
    try:
        existing = _writable_mode(target)
        _remove_stale(prefix)
        _write_new(temp, payload, existing)
        os.replace(temp, target)
        _sync_folder(folder)
    except OSError as err:
        _discard(temp)
        if err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, path) from None
    except BaseException:
        _discard(temp)
        raise
    finally:
        _IN_FLIGHT.discard(temp)


def atomic_save(path, data, mode="wb"):
    """`atomic_write` for the files MXNet writes in C++ (`nd.save`, `Symbol.save`): a failure is the MXNetError
    dmlc's stream raises there, naming `path` and why."""
    try:
        atomic_write(path, data, mode)
    except OSError as err:
        raise MXNetError('Cannot write "%s": %s' % (os.fspath(path), err.strerror or err)) from err


def _writable_mode(target):
    """The permission bits of an existing target (None when it does not exist); refuses a file `open` could
    not write."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), target)
    if not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)
    return stat.S_IMODE(info.st_mode) & 0o777


def _write_new(temp, payload, existing):
    """Create `temp` exclusively, never more permissive than the final mode, write, fsync, set the mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, 0o666 if existing is None else existing)     # the umask applies, as for open()
    with os.fdopen(fd, "wb") as handle:
        if existing is not None and hasattr(os, "fchmod"):
            os.fchmod(handle.fileno(), existing)
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder):
    """Make the rename durable; folders some file systems cannot open or fsync are left as they are."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(temp):
    try:
        os.unlink(temp)
    except OSError:
        pass


def _remove_stale(prefix):
    """Remove the temp files of this target left by writers that are no longer running."""
    folder, start = os.path.split(prefix)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not name.startswith(start):
            continue
        pid = name[len(start):].split("-", 1)[0]
        if not (pid.isascii() and pid.isdigit()):
            continue
        candidate = os.path.join(folder, name)
        if candidate not in _IN_FLIGHT and not _alive(int(pid)):
            _discard(candidate)


def _alive(pid):
    if pid == os.getpid():
        return False                    # not in flight here: left by an earlier process with this pid
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                     # another user's live process
    except (OverflowError, ValueError, OSError):
        return False
    return True
