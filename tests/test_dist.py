"""Distributed data parallelism: kvstore 'dist_sync' on MPI (onnxsym/kvstore_dist.py) and `onnxsym launch`.

The training checks run two workers with `onnxsym launch -n 2` (mpiexec on this machine) of tests/dist_worker.py,
each on half of every batch, and one process on the whole batches: same seed, data order and (through rank 0's
broadcast) initial parameters, so dist_sync must give that process's parameters to float tolerance, every worker
must hold the same parameters after every step, and rank 0's checkpoint must load here. The control: the same two
workers with kvstore 'local' (no allreduce) end elsewhere. The MPI checks skip only where mpi4py is not installed.
"""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import onnxsym as mx
from onnxsym import cli
from onnxsym import launch as _launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "dist_worker.py")
TIMEOUT = 120       # seconds for one launch: a hung MPI job must not hang the suite
# largest |dist_sync - one process| per model: SGD adds in another order only; Adam divides by sqrt(v), which
# magnifies last-bit differences of the summed gradients
TOLERANCE = {"mlp": 1e-6, "lenet": 1e-4}


@pytest.fixture(scope="module")
def mpi():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich): no MPI to run workers")
    return _launch.find_mpiexec()


def _run(args, workers=None):
    """Run tests/dist_worker.py ARGS: in one process, or in `workers` processes through `onnxsym launch`."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, WORKER] + [str(a) for a in args]
    if workers is not None:
        command = [sys.executable, "-m", "onnxsym", "launch", "-n", str(workers), "--"] + command
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=ROOT)
    assert done.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(command), done.returncode, done.stdout,
                                                              done.stderr[-4000:])


def _params(path):
    with np.load(path) as saved:
        return {k[4:]: saved[k] for k in saved.files if k.startswith("arg:")}, float(saved["step_diff"]), \
            int(saved["steps"])


def _max_difference(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope="module", params=["mlp", "lenet"])
def runs(request, mpi, tmp_path_factory):
    """{'one': one process on whole batches, 'dist': 2 dist_sync workers, 'local': 2 workers without allreduce}"""
    model = request.param
    folders = {}
    for name, kvstore, workers in (("one", "none", None), ("dist", "dist_sync", 2), ("local", "local", 2)):
        folders[name] = tmp_path_factory.mktemp("%s-%s" % (model, name))
        _run(["train", folders[name], "--model", model, "--kvstore", kvstore], workers)
    return model, folders


def test_dist_sync_equals_one_process_on_the_whole_batch(runs):
    model, folders = runs
    one, _, _ = _params(folders["one"] / "rank0.npz")
    dist, _, _ = _params(folders["dist"] / "rank0.npz")
    local, _, _ = _params(folders["local"] / "rank0.npz")
    difference = _max_difference(dist, one)
    print("%s: max |dist_sync (2 workers) - one process| = %.3g" % (model, difference))
    assert difference <= TOLERANCE[model], difference
    # the allreduce really ran: without it each worker follows its own half of the data
    assert _max_difference(local, one) > 100 * TOLERANCE[model] + 1e-3


def test_every_worker_holds_the_same_parameters_after_every_step(runs):
    _, folders = runs
    rank0, diff0, steps0 = _params(folders["dist"] / "rank0.npz")
    rank1, diff1, steps1 = _params(folders["dist"] / "rank1.npz")
    assert steps0 == steps1 == 12       # 3 epochs of 4 batches, each compared with rank 0's broadcast
    assert diff0 == diff1 == 0.0
    assert _max_difference(rank0, rank1) == 0.0     # (rank 1 was initialized with another seed)


def test_rank0_checkpoint_loads_in_a_fresh_process(runs):
    model, folders = runs
    symbol, args, auxs = mx.model.load_checkpoint(str(folders["dist"] / "model"), 3)
    rank0, _, _ = _params(folders["dist"] / "rank0.npz")
    assert _max_difference({k: v.asnumpy() for k, v in args.items()}, rank0) == 0.0
    mod = mx.mod.Module.load(str(folders["dist"] / "model"), 3)
    shape = (4, 1, 8, 8) if model == "mlp" else (4, 1, 28, 28)
    mod.bind(data_shapes=[("data", shape)], for_training=False)
    out = mod.predict(mx.io.NDArrayIter(np.ones(shape, np.float32), batch_size=4))
    assert out.shape == (4, 10) and np.all(np.isfinite(out.asnumpy()))


def test_dist_sync_with_two_devices_per_worker(mpi, tmp_path):
    """Each worker splits its half batch over two contexts: devices are summed first, then the workers."""
    (tmp_path / "one").mkdir()
    (tmp_path / "dist").mkdir()
    _run(["train", tmp_path / "one", "--model", "mlp", "--kvstore", "none"])
    _run(["train", tmp_path / "dist", "--model", "mlp", "--devices", "2"], workers=2)
    one, _, _ = _params(tmp_path / "one" / "rank0.npz")
    rank0, diff0, _ = _params(tmp_path / "dist" / "rank0.npz")
    rank1, diff1, _ = _params(tmp_path / "dist" / "rank1.npz")
    assert _max_difference(rank0, one) <= TOLERANCE["mlp"]
    assert diff0 == diff1 == _max_difference(rank0, rank1) == 0.0


def test_mnist_iter_parts_shard_the_data_set(tmp_path):
    """MNISTIter(num_parts=N, part_index=rank) gives each worker its own contiguous share (MXNet's sharding)."""
    count = 12
    images = np.arange(count * 4, dtype=np.uint8).reshape(count, 2, 2)
    (tmp_path / "img").write_bytes(struct.pack(">4I", 2051, count, 2, 2) + images.tobytes())
    (tmp_path / "lbl").write_bytes(struct.pack(">2I", 2049, count) + np.arange(count, dtype=np.uint8).tobytes())
    seen = []
    for part in range(3):
        it = mx.io.MNISTIter(image=str(tmp_path / "img"), label=str(tmp_path / "lbl"), batch_size=2,
                             shuffle=False, num_parts=3, part_index=part, silent=True)
        seen.append([int(v) for batch in it for v in batch.label[0].asnumpy()])
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_kvstore_api_across_two_workers(mpi, tmp_path):
    _run(["api", tmp_path], workers=2)
    assert sorted(os.listdir(tmp_path)) == ["api0.ok", "api1.ok", "states0", "states1"]


def test_one_process_is_one_worker_of_one(mpi, tmp_path):
    """A program started without a launcher runs dist_sync as one worker (the whole batch, rescale 1/batch)."""
    code = ("import onnxsym as mx; kv = mx.kv.create('dist_sync'); assert (kv.rank, kv.num_workers) == (0, 1); "
            "kv.barrier(); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_import_onnxsym_does_not_load_mpi():
    code = "import sys, onnxsym as mx; mx.kv.create('local'); assert 'mpi4py' not in sys.modules, 'mpi4py loaded'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert done.returncode == 0, done.stderr


def test_missing_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)        # `import mpi4py` now raises ImportError
    for name in ("dist_sync", "dist_device_sync", "horovod"):
        with pytest.raises(mx.MXNetError, match="pip install mpi4py mpich"):
            mx.kv.create(name)


def test_dist_async_is_refused_naming_dist_sync():
    for name in ("dist_async", "dist_async_device"):
        with pytest.raises(mx.MXNetError, match="'dist_sync'"):
            mx.kv.create(name)


# ----- the launcher -----

def test_launcher_finds_mpiexec_beside_python_first(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    beside = bin_dir / "mpiexec"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    monkeypatch.setenv("PATH", "")
    assert _launch.find_mpiexec(str(bin_dir / "python")) == str(beside)
    assert _launch.mpiexec_command(4, ["python", "train.py"], launcher="local", mpiexec="mpiexec") == [
        "mpiexec", "-n", "4", "python", "train.py"]
    hosts = tmp_path / "hosts"
    hosts.write_text("node1\nnode2\n")
    assert _launch.mpiexec_command(8, ["python", "t.py"], str(hosts), "mpi", mpiexec="mpiexec") == [
        "mpiexec", "-n", "8", "-hostfile", str(hosts), "python", "t.py"]


def test_launcher_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(_launch.LaunchError, match="no mpiexec next to .* nor on PATH: `pip install mpi4py mpich`"):
        _launch.find_mpiexec(str(tmp_path / "python"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert cli.main(["launch", "-n", "2", "--", "python", "train.py"]) == 1
    assert "pip install mpi4py mpich" in capsys.readouterr().err
    assert cli.main(["launch", "-n", "2"]) == 1
    assert "no command to launch" in capsys.readouterr().err
    assert cli.main(["launch", "-n", "2", "--launcher", "local", "--hostfile", str(tmp_path), "--", "x"]) == 1
    assert "--hostfile needs --launcher mpi" in capsys.readouterr().err


def test_launch_returns_the_workers_exit_status(mpi):
    command = [sys.executable, "-m", "onnxsym", "launch", "-n", "2", "--", sys.executable, "-c",
               "import sys; sys.exit(3)"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert done.returncode == 3, (done.returncode, done.stderr)
