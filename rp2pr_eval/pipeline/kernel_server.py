"""Notebook kernels forked from one warm process, for the batch runner (POSIX with ``pidfd``: Linux).

A run starts 17 kernels. Each fresh kernel spends about 3 s of CPU before it does any work: the
interpreter and ipykernel start, then ``import rp2pr_eval`` (pandas, scipy.stats, formulaic) and the
estimators' and figures' own imports (statsmodels, matplotlib's backends) — about a quarter of a run.
The runner therefore starts one *kernel server* (``python -m rp2pr_eval.pipeline.kernel_server
SOCKET``) that imports all of that once, then forks a kernel for each notebook: the child starts its
own session, takes the environment and working folder jupyter_client asked for, and runs
``ipykernel_launcher`` exactly as the kernel spec would, in a process whose modules are already
loaded (copy-on-write). Notebooks see the same modules, parameters and results as in a fresh kernel:
nothing is executed in the server but imports, and no module of the package keeps state.

Why by hand: jupyter_client launches kernels with ``subprocess.Popen`` only, and neither it nor
papermill has a forking launcher; a multiprocessing "forkserver" cannot hand over a process that
jupyter_client then manages. This module is that launcher and nothing more.

Safety and faults:

* the server listens on a Unix socket in the run's private 0700 folder (removed with it) and serves
  only the runner's user; a request is the kernel command and environment jupyter_client built;
* it runs nothing in threads, so forking is safe; it exits when the runner is gone (Linux
  ``PR_SET_PDEATHSIG``, and a check of its parent every second), and forked kernels exit when the
  server is gone (ipykernel's parent poller, ``JPY_PARENT_PID`` set to the server);
* the runner manages each forked kernel through a ``pidfd`` (:class:`ForkedKernel`), so a signal
  never reaches a process that merely reused a dead kernel's pid;
* anything unexpected — no ``pidfd`` on this platform, a kernel command that is not
  ``python -m ipykernel_launcher``, a server that did not start within 60 s or stopped — and the
  runner starts the kernel the ordinary way (:func:`ipc_kernel_manager` falls back); the run
  only gets slower.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: What a kernel of the batch imports anyway (imported once in the server, before any fork).
PRELOAD = (
    "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "matplotlib_inline.backend_inline",
    "rp2pr_eval", "rp2pr_eval.pipeline.notebook", "rp2pr_eval.pipeline.analysis", "rp2pr_eval.presentation.report",
    "rp2pr_eval.presentation.referee", "rp2pr_eval.presentation.figures.canvas",
    "matplotlib.backends.backend_agg", "matplotlib.backends.backend_pdf", "matplotlib.backends.backend_svg",
    "statsmodels.genmod.generalized_linear_model", "statsmodels.regression.mixed_linear_model",
    "scipy.optimize", "pyarrow.parquet", "PIL.PngImagePlugin",
)
#: Longest socket path (bytes) the server binds; Unix socket paths are limited to about 104 bytes.
MAX_SOCKET_PATH = 100
#: Seconds the runner waits for the server to be ready before starting kernels the ordinary way.
READY_TIMEOUT = 60.0
_MODULE = "rp2pr_eval.pipeline.kernel_server"


# ------------------------------------------------------------------------------------------- runner side
def supported() -> bool:
    """Whether kernels can be forked here (POSIX ``fork`` and Linux ``pidfd``)."""
    return hasattr(os, "fork") and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


class KernelServer:
    """The runner's handle on a kernel server (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / "ks"
        self._ready = False
        # a Unix socket path holds at most ~104 bytes (macOS; 108 on Linux): a deeper private folder
        # (a long $TMPDIR) gets no server, and its kernels start the ordinary way
        self.process = None if len(os.fsencode(self.path)) + len(".new") > MAX_SOCKET_PATH else subprocess.Popen(
            [sys.executable, "-m", _MODULE, str(self.path)], stdin=subprocess.DEVNULL)

    def ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Wait until the server listens (``False`` if it stopped or did not start in time)."""
        if self.process is None:
            return False
        end = time.monotonic() + timeout
        while not self._ready:
            if self.process.poll() is not None or time.monotonic() > end:
                return False
            self._ready = self.path.exists()
            if not self._ready:
                time.sleep(0.05)
        return self.process.poll() is None

    def fork(self, argv: list[str], env: dict[str, str], cwd: str | None) -> ForkedKernel | None:
        """A kernel running ``argv`` (``python -m ipykernel_launcher …``) with ``env`` in ``cwd``; ``None``
        where the server cannot start it (the caller then starts the kernel the ordinary way)."""
        module_args = _launcher_args(argv)
        if module_args is None or not self.ready():
            return None
        request = json.dumps({"args": module_args, "env": env, "cwd": cwd}).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(30)
                conn.connect(str(self.path))
                conn.sendall(request)
                conn.shutdown(socket.SHUT_WR)
                reply = json.loads(_read_all(conn) or b"{}")
        except (OSError, ValueError):
            return None
        pid = reply.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return None
        try:
            return ForkedKernel(pid)
        except OSError:                      # it already ended: report it as a kernel that died
            return None

    def stop(self) -> None:
        """Stop the server (its kernels end on their own once it is gone); waits up to 5 s, then kills."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class ForkedKernel:
    """A ``subprocess.Popen``-like handle on a forked kernel, through a ``pidfd`` (poll, wait, signals)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd = os.pidfd_open(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            readable, _, _ = select.select([self._fd], [], [], 0)
            if readable:                     # the process has ended (its exit status belongs to the server)
                self.returncode = 0
                os.close(self._fd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            select.select([self._fd], [], [], 0.1)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._fd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _launcher_args(argv: list[str]) -> list[str] | None:
    """The arguments after ``-m ipykernel_launcher`` of a kernel command, or ``None`` for another command."""
    if not argv or Path(argv[0]).resolve() != Path(sys.executable).resolve() or "-m" not in argv:
        return None
    i = argv.index("-m")
    if i + 1 >= len(argv) or argv[i + 1] != "ipykernel_launcher":
        return None
    if any(not a.startswith("-X") for a in argv[1:i]):   # interpreter options other than -X: not forkable
        return None
    return list(argv[i + 2:])


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


#: Socket prefixes k1, k2, ... of the kernels this process starts (``next`` on a count is atomic in CPython).
_SOCKET_IDS = itertools.count(1)


def ipc_kernel_manager(folder: str | Path, server: KernelServer | None = None) -> type:
    """A kernel manager whose kernel talks over Unix sockets in ``folder`` instead of loopback TCP.

    The notebook kernels hold the patient table. Over TCP (jupyter_client's default) every message,
    code and outputs, crosses the loopback interface in plain text on ports any local user can reach
    (ipykernel >= 7.3 warns about it on each start). Unix sockets in the run's private 0700 folder are
    reachable by the run's user only, need no encryption and are removed with the folder. Each kernel
    gets its own short socket prefix (Unix socket paths are limited to about 104 bytes).

    With a :class:`~rp2pr_eval.pipeline.kernel_server.KernelServer`, kernels are forked from it (already
    imported: about 3 s of CPU less per kernel); where it cannot start one, the kernel starts as usual.
    """
    from jupyter_client import AsyncKernelManager

    base = Path(folder)

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.transport = "ipc"
            self.ip = str(base / f"k{next(_SOCKET_IDS)}")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            forked = None if server is None else server.fork(kernel_cmd, kw.get("env") or dict(os.environ),
                                                             kw.get("cwd"))
            if forked is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            # what LocalProvisioner.launch_kernel records for a Popen; no process group (pgid None), so
            # every signal goes through the kernel's pidfd
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid = forked, forked.pid, None
            provisioner.cwd = kw.get("cwd", os.getcwd())
            self._reconcile_connection_info(provisioner.connection_info)

    return IPCKernelManager


# ------------------------------------------------------------------------------------------- server side
def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the runner ends (covers SIGKILL of the runner)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)          # PR_SET_PDEATHSIG


def _reap(signum, frame) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _become_kernel(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m ipykernel_launcher ARGS`` as jupyter_client asked. Never returns."""
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()                                     # its own process group, as jupyter_client's launcher does
        os.environ.clear()
        os.environ.update(request["env"])
        server = os.getppid()
        os.environ["JPY_PARENT_PID"] = str(server)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        import numpy as np

        np.random.seed()      # numpy's legacy global generator: fresh entropy, as in a new process
        import runpy

        # ipykernel read JPY_PARENT_PID when the server imported it: name the parent on the command line,
        # so the kernel's parent poller watches the server (and ends the kernel when the server is gone)
        sys.argv = ["ipykernel_launcher", *request["args"], f"--IPKernelApp.parent_handle={server}"]
        runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the kernel's own error, shown as a fresh kernel would
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(path: str | Path) -> int:
    """Import :data:`PRELOAD`, listen on ``path`` and fork a kernel per request until the runner is gone."""
    _die_with_parent()
    runner = os.getppid()
    stop = []
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C reaches the runner, which stops us
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(Exception):     # a module that fails here fails in the kernel, as usual
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, _reap)
    path = Path(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    partial = path.with_name(path.name + ".new")
    try:
        listener.bind(str(partial))
        os.chmod(partial, 0o600)
        listener.listen(8)
        os.replace(partial, path)                        # visible once it accepts connections
    except OSError:                                      # the runner falls back to ordinary kernels
        listener.close()
        return 1
    listener.settimeout(1.0)
    try:
        while not stop and os.getppid() == runner:
            try:
                conn, _ = listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            with conn:
                conn.settimeout(30)
                try:
                    request = json.loads(_read_all(conn))
                except (OSError, ValueError):
                    continue
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    _become_kernel(request)
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"pid": pid}).encode())
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            path.unlink()
    return 0


if __name__ == "__main__":                               # python -m rp2pr_eval.pipeline.kernel_server SOCKET
    sys.exit(serve(sys.argv[1]))
