"""Kernels forked from the batch runner's warm kernel server (rp2pr_eval.pipeline.kernel_server)."""
from __future__ import annotations

import os
import time

import nbformat
import pytest

from rp2pr_eval.pipeline import batch, kernel_server

pytestmark = [pytest.mark.notebook,
              pytest.mark.skipif(not kernel_server.supported(), reason="needs fork and pidfd (Linux)")]


@pytest.fixture
def server(tmp_path):
    srv = kernel_server.KernelServer(tmp_path)
    assert srv.ready(), "the kernel server did not start"
    yield srv
    srv.stop()


def _gone(pid: int, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_notebook_runs_in_a_forked_kernel_as_in_a_fresh_one(tmp_path, server):
    """Papermill through the runner's kernel manager: the kernel is a child of the server, has the
    package already imported, takes the environment jupyter_client built, draws its own random state,
    and leaves no process or socket behind."""
    import papermill as pm

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(
        "import os, sys, json\n"
        "preloaded = 'rp2pr_eval' in sys.modules\n"
        "import numpy as np\n"
        "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'preloaded': preloaded,\n"
        "                  'parent': os.environ.get('JPY_PARENT_PID'), 'draw': float(np.random.random()),\n"
        "                  'sid': os.getsid(0) == os.getpid(), 'marker': os.environ.get('RP2PR_TEST_MARKER')}))")]
    nbformat.write(book, tmp_path / "in.ipynb")
    os.environ["RP2PR_TEST_MARKER"] = "from the runner"
    try:
        seen = []
        for i in range(2):
            pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / f"out{i}.ipynb"), kernel_name="python3",
                                progress_bar=False, kernel_manager_class=batch.ipc_kernel_manager(tmp_path, server))
            out = nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4)
            import json

            seen.append(json.loads(out.cells[0].outputs[0]["text"]))
    finally:
        del os.environ["RP2PR_TEST_MARKER"]
    for s in seen:
        assert s["ppid"] == server.process.pid and s["parent"] == str(server.process.pid)
        assert s["preloaded"] and s["sid"] and s["marker"] == "from the runner"
        assert _gone(s["pid"], 10)
    assert seen[0]["draw"] != seen[1]["draw"]         # numpy's global generator reseeded in each kernel
    assert not list(tmp_path.glob("k*-*"))            # the kernels' Unix sockets are gone


def test_a_forked_kernel_ends_when_the_server_is_killed(tmp_path, server):
    """SIGKILL of the server (as of the runner, whose death the server follows) ends its kernels."""
    import asyncio
    import signal

    manager = batch.ipc_kernel_manager(tmp_path, server)(kernel_name="python3")
    asyncio.run(manager.start_kernel())
    pid = manager.provisioner.pid
    assert isinstance(manager.provisioner.process, kernel_server.ForkedKernel)
    assert manager.provisioner.process.poll() is None
    os.kill(server.process.pid, signal.SIGKILL)
    assert _gone(pid, 15), "the forked kernel outlived its server"
    assert manager.provisioner.process.poll() == 0
    manager.provisioner.process.kill()                # no-op once it has ended: no stray signal
    manager.cleanup_connection_file()


def test_commands_the_server_cannot_fork_fall_back_to_an_ordinary_start(tmp_path, server):
    import sys

    assert server.fork(["/bin/echo", "hi"], dict(os.environ), None) is None
    assert server.fork([sys.executable, "-c", "pass"], dict(os.environ), None) is None
    assert server.fork([sys.executable, "-O", "-m", "ipykernel_launcher", "-f", "x"], dict(os.environ), None) is None
    server.stop()
    assert server.fork([sys.executable, "-m", "ipykernel_launcher", "-f", "x"], dict(os.environ), None) is None


def test_a_private_folder_too_deep_for_a_unix_socket_gets_no_server(tmp_path):
    """Socket paths hold ~104 bytes: a deeper folder (a long $TMPDIR) starts its kernels the ordinary way,
    quietly, instead of a server that cannot bind."""
    import sys

    deep = tmp_path / ("d" * (kernel_server.MAX_SOCKET_PATH - len(str(tmp_path))))
    deep.mkdir()
    srv = kernel_server.KernelServer(deep)
    assert srv.process is None and not srv.ready()
    assert srv.fork([sys.executable, "-m", "ipykernel_launcher", "-f", "x"], dict(os.environ), None) is None
    srv.stop()
