"""How every file onnxsym writes lands on disk: atomically, with `open`'s permissions, never a partial file."""
import os
import random
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import onnxsym as mx
from onnxsym import _files
from onnxsym.base import MXNetError
from onnxsym.symbol.serialize import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_module(hidden=3, inputs=4):
    """A bound, initialized Module with SGD-momentum states for every parameter."""
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=hidden, name="fc")
    net = mx.sym.SoftmaxOutput(net, name="softmax")
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (2, inputs))], label_shapes=[("softmax_label", (2,))])
    mod.init_params()
    mod.init_optimizer(optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    batch = mx.io.DataBatch(data=[mx.nd.ones((2, inputs))], label=[mx.nd.array([0, 1])])
    mod.forward_backward(batch)
    mod.update()
    return mod


def write_nd(path):
    mx.nd.save(path, {"x": mx.nd.ones((2, 3))})


def write_symbol(path):
    mx.sym.Variable("x").save(path)


def write_atomic(path):
    atomic_write(path, "text")


def write_states(path):
    small_module().save_optimizer_states(path)


def write_kvstore_states(path):
    kv = mx.kv.create("local")
    kv.set_optimizer(mx.optimizer.create("sgd", momentum=0.9))
    kv.init(0, mx.nd.ones((2,)))
    kv.push(0, mx.nd.ones((2,)))
    kv.save_optimizer_states(path, dump_optimizer=True)


def write_onnx(path):
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=2, name="fc")
    params = {"fc_weight": mx.nd.ones((2, 3)), "fc_bias": mx.nd.zeros((2,))}
    mx.onnx.export_model(net, params, [(1, 3)], onnx_file_path=path)


WRITERS = [write_nd, write_symbol, write_atomic, write_states, write_kvstore_states, write_onnx]


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the old one afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_new_file_gets_open_permissions(tmp_path, umask, writer, mask):
    umask(mask)
    writer(str(tmp_path / "out"))
    with open(tmp_path / "reference", "w"):
        pass
    assert mode_of(tmp_path / "out") == mode_of(tmp_path / "reference") == 0o666 & ~mask
    assert sorted(os.listdir(tmp_path)) == ["out", "reference"]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
@pytest.mark.parametrize("existing,mask", [(0o600, 0o022), (0o644, 0o077), (0o640, 0o002)])
def test_overwritten_file_keeps_its_mode_as_with_open(tmp_path, umask, writer, existing, mask):
    umask(mask)
    for name in ("out", "reference"):
        (tmp_path / name).write_text("old")
        os.chmod(tmp_path / name, existing)
    writer(str(tmp_path / "out"))
    with open(tmp_path / "reference", "w") as handle:
        handle.write("new")
    assert mode_of(tmp_path / "out") == mode_of(tmp_path / "reference") == existing
    assert (tmp_path / "out").read_bytes() != b"old"


def test_checkpoints_get_open_permissions(tmp_path, umask):
    umask(0o027)
    mod = small_module()
    mod.save_checkpoint(str(tmp_path / "net"), 3, save_optimizer_states=True)
    arg, aux = mod.get_params()
    mx.model.save_checkpoint(str(tmp_path / "model"), 1, mod.symbol, arg, aux)
    names = sorted(os.listdir(tmp_path))
    assert names == ["model-0001.params", "model-symbol.json", "net-0003.params", "net-0003.states",
                     "net-symbol.json"]
    assert {mode_of(tmp_path / n) for n in names} == {0o640}


@pytest.mark.parametrize("writer,error", [
    (write_nd, MXNetError), (write_symbol, MXNetError),                     # dmlc's stream in MXNet
    (write_atomic, FileNotFoundError), (write_states, FileNotFoundError),   # Python's open in MXNet
    (write_kvstore_states, FileNotFoundError), (write_onnx, FileNotFoundError),
], ids=lambda v: getattr(v, "__name__", ""))
def test_missing_folder_fails_naming_the_users_path(tmp_path, writer, error):
    target = os.path.join(str(tmp_path), "no such folder", "model.out")
    with pytest.raises(error) as info:
        writer(target)
    assert "no such folder/model.out" in str(info.value) and "tmp" not in str(info.value).replace(str(tmp_path), "")
    assert os.listdir(tmp_path) == []


def test_missing_folder_fails_before_training_output_is_serialized(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(_files, "_write_new", lambda *args: calls.append(args))
    with pytest.raises(FileNotFoundError):
        atomic_write(str(tmp_path / "gone" / "x"), b"data", "wb")
    assert calls == []


def test_symlink_is_written_through_as_open_does(tmp_path):
    (tmp_path / "real.params").write_bytes(b"old")
    os.symlink("real.params", tmp_path / "link.params")
    write_nd(str(tmp_path / "link.params"))
    assert os.path.islink(tmp_path / "link.params")
    np.testing.assert_array_equal(mx.nd.load(str(tmp_path / "real.params"))["x"].asnumpy(), np.ones((2, 3)))


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.params"
    write_nd(str(target))
    before = target.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(MXNetError, match='Cannot write ".*model.params": No space left on device'):
        mx.nd.save(str(target), {"y": mx.nd.zeros((5,))})
    with pytest.raises(OSError, match="No space left on device: '.*model.params'"):
        atomic_write(str(target), b"new", "wb")
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["model.params"]


def test_refuses_a_folder_as_target(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        atomic_write(str(tmp_path), "x")
    with pytest.raises(ValueError, match="mode"):
        atomic_write(str(tmp_path / "x"), "x", mode="a")


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temps_of_dead_writers_are_removed_at_the_next_save(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = ".model.params.onnxsym-tmp-%d-0badc0de" % dead_pid()
        live = ".model.params.onnxsym-tmp-%d-0badc0de" % sleeper.pid
        mine = ".model.params.onnxsym-tmp-%d-12345678" % os.getpid()    # not in flight: an earlier process
        other_target = ".other.params.onnxsym-tmp-%d-0badc0de" % dead_pid()
        unrelated = [".model.params.onnxsym-tmp-notapid", ".model.params.tmp", "model.params.onnxsym-tmp-1-x"]
        for name in [dead, live, mine, other_target] + unrelated:
            (tmp_path / name).write_bytes(b"partial")
        write_nd(str(tmp_path / "model.params"))
        assert sorted(os.listdir(tmp_path)) == sorted([live, other_target, "model.params"] + unrelated)
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("name", ["n" * 255, "\u00e9" * 127])      # 255 and 254 bytes
def test_long_names_still_write(tmp_path, name):
    target = tmp_path / name
    atomic_write(str(target), "old")
    atomic_write(str(target), "ok")
    assert target.read_text() == "ok" and os.listdir(tmp_path) == [target.name]


# ----- SIGKILL during saves -----
# A fork server: it imports onnxsym and builds the Module once (3 s), then for every line on stdin forks a
# writer that saves generation after generation, printing "pid N" first and each finished generation after.
# The server reaps each killed writer (so its pid is dead) and says "reaped".
WRITER_SCRIPT = textwrap.dedent("""
    import os, sys
    import onnxsym as mx
    from tests.test_file_writes import small_module
    folder = sys.argv[1]
    mod = small_module(hidden=256, inputs=2048)        # 2 MiB of weight, 2 MiB of momentum
    for generation in range(0, 10 ** 6, 1000):
        if not sys.stdin.readline():
            break
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
            print("reaped", flush=True)
            continue
        print("pid", os.getpid(), flush=True)
        while True:
            generation += 1
            arg, aux = mod.get_params()
            for array in list(arg.values()) + list(mod._updater.states.values()):
                array[:] = generation
            mod.set_params(arg, aux)
            mx.nd.save(folder + "/arrays.params", {"a": mx.nd.full((1 << 19,), generation),
                                                   "b": mx.nd.full((1 << 18,), generation)})
            mx.model.save_checkpoint(folder + "/model", 0, mod.symbol, arg, aux)
            mod.save_checkpoint(folder + "/module", 0, save_optimizer_states=True)
            print(generation, flush=True)
""")
SAVED_IN_ORDER = ["arrays.params", "model-0000.params", "module-0000.params", "module-0000.states"]


def generations(folder):
    """The generation each file holds; each file must load completely and hold one generation only."""
    from onnxsym.module.optimizer import Updater, create
    found = []
    for name in SAVED_IN_ORDER[:3]:
        arrays = mx.nd.load(os.path.join(folder, name))
        found.append(np.unique(np.concatenate([a.asnumpy().ravel() for a in arrays.values()])))
    updater = Updater(create("sgd"))
    with open(os.path.join(folder, SAVED_IN_ORDER[3]), "rb") as handle:
        updater.set_states(handle.read())
    found.append(np.unique(np.concatenate([s.asnumpy().ravel() for s in updater.states.values()])))
    assert all(len(values) == 1 for values in found), "a file mixes generations: %s" % found
    for name in ("model-symbol.json", "module-symbol.json"):
        assert mx.sym.load(os.path.join(folder, name)).list_arguments() == [
            "data", "fc_weight", "fc_bias", "softmax_label"]
    return [int(values[0]) for values in found]


def temps_in(folder):
    return sorted(n for n in os.listdir(folder) if ".onnxsym-tmp-" in n)


def test_sigkill_during_saves_leaves_old_or_new_complete_files(tmp_path):
    folder, rng = str(tmp_path), random.Random(10)
    server = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, folder], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT), bufsize=0)
    seen = []

    def readline(timeout=60):
        """The server's next line; a failure, not a hang, when it stops talking (EOF, or nothing for a minute)."""
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([server.stdout], [], [], timeout)
            byte = server.stdout.read(1) if ready else b""
            assert byte, "the writer server went quiet after %r (it ended: %s)" % (seen[-5:], server.poll())
            line += byte
        seen.append(line)
        return line

    previous, interrupted = None, 0
    try:
        for round_ in range(6):
            server.stdin.write(b"go\n")
            server.stdin.flush()
            announce = readline().split()
            assert announce[:1] == [b"pid"], announce
            writer = int(announce[1])
            assert readline() == b"%d\n" % (1000 * round_ + 1)
            if previous is not None:    # one full round of saves removed what the killed writer left
                assert not [n for n in temps_in(folder) if "-%d-" % previous in n]
            time.sleep(rng.random() * 0.3)
            os.kill(writer, signal.SIGKILL)
            lines = []
            while not lines or lines[-1] != b"reaped":
                lines.append(readline().strip())
            last = int(([b"%d" % (1000 * round_ + 1)] + lines[:-1])[-1])
            found = generations(folder)
            # each file is the last complete generation or the one being written, in the order they are saved
            assert all(g in (last, last + 1) for g in found) and found == sorted(found, reverse=True), (last, found)
            interrupted += bool(temps_in(folder)) or found[0] == last + 1
            previous = writer
    finally:
        server.kill()
        server.communicate()
    assert interrupted, "no kill landed inside a save: the test checked nothing"
    write_nd(os.path.join(folder, "arrays.params"))
    mx.sym.Variable("x").save(os.path.join(folder, "model-symbol.json"))
    assert not [n for n in temps_in(folder) if n.startswith((".arrays.params", ".model-symbol.json"))]



def test_file_open_could_not_write_is_refused_as_open_refuses_it(tmp_path, monkeypatch):
    """A file its user may not write (open() raises PermissionError) is not replaced by a rename either.
    (os.access is faked: the suite runs as root, for whom every file is writable.)"""
    target = tmp_path / "theirs.params"
    target.write_bytes(b"theirs")
    monkeypatch.setattr(os, "access", lambda path, mode: not (path == str(target) and mode == os.W_OK))
    with pytest.raises(PermissionError) as info:
        atomic_write(str(target), "mine")
    assert info.value.filename == str(target)
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["theirs.params"]
