"""`onnxsym launch`: start the workers of a distributed training job, as MXNet's tools/launch.py does.

    onnxsym launch -n 2 -- python train.py --kv-store dist_sync
    onnxsym launch -n 8 --hostfile hosts --launcher mpi -- python train.py

MXNet's launcher starts parameter servers and a scheduler besides the workers (ssh, mpi, sge, yarn, local);
onnxsym's workers all-reduce over MPI (kvstore_dist.py), so there is nothing to start but N copies of the command,
and mpiexec does it: 'mpi' passes the hostfile to mpiexec, 'local' runs all N on this machine. The mpiexec used is
the one next to the running Python first (PyPI's `mpich` wheel puts it in the virtual environment's bin/, beside
the MPI library mpi4py loads), else the first on PATH.
"""
import os
import shutil
import subprocess
import sys

__all__ = ["find_mpiexec", "mpiexec_command", "launch", "LaunchError"]

INSTALL_HINT = "pip install mpi4py mpich"


class LaunchError(Exception):
    """A launch that cannot start (no mpiexec, bad options): reported as one line by the command line."""


def find_mpiexec(python=None):
    """The path of mpiexec: beside `python` (default: this interpreter) first, else on PATH; LaunchError if none."""
    python = python or sys.executable
    beside = os.path.join(os.path.dirname(python), "mpiexec")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec")
    if found:
        return found
    raise LaunchError("no mpiexec next to %s nor on PATH: `%s` installs MPICH's mpiexec into this Python's bin/ "
                      "(or install an MPI such as the system's mpich or openmpi)"
                      % (os.path.dirname(python) or python, INSTALL_HINT))


def mpiexec_command(num_workers, command, hostfile=None, launcher="local", mpiexec=None):
    """The argument list that starts `num_workers` copies of `command` (a list) through mpiexec."""
    if num_workers < 1:
        raise LaunchError("-n must be at least 1, got %d" % num_workers)
    if not command:
        raise LaunchError("no command to launch: give it after --, e.g. onnxsym launch -n 2 -- python train.py")
    if launcher not in ("mpi", "local"):
        raise LaunchError("unknown launcher %r: onnxsym launches with 'mpi' or 'local' (MXNet's ssh, sge and yarn "
                          "launchers start parameter servers, which onnxsym does not use)" % launcher)
    if hostfile is not None:
        if launcher == "local":
            raise LaunchError("--hostfile needs --launcher mpi ('local' runs every worker on this machine)")
        if not os.path.isfile(hostfile):
            raise LaunchError("no such hostfile: %s" % hostfile)
    args = [mpiexec or find_mpiexec(), "-n", str(num_workers)]
    if hostfile is not None:
        args += ["-hostfile", hostfile]
    return args + list(command)


def launch(num_workers, command, hostfile=None, launcher="local"):
    """Run the workers and wait for them; returns mpiexec's exit status (non-zero when a worker failed)."""
    args = mpiexec_command(num_workers, command, hostfile, launcher)
    try:
        return subprocess.call(args)
    except OSError as err:
        raise LaunchError("cannot run %s: %s" % (args[0], err)) from None
