"""The local Triton launcher: its command line, environment and CLI, and a real start/stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from serving.processes import PROJECT_ROOT
from serving.triton import TritonOptions, prepare_backends, server_command, server_env


def test_command_binds_loopback_on_the_given_ports_and_loads_the_model(tmp_path: Path) -> None:
    options = TritonOptions(repository=tmp_path, http_port=1111, grpc_port=2222, metrics_port=3333)
    command = server_command(options)
    joined = " ".join(command)
    assert command[0].endswith("bin/tritonserver")
    for flag, value in [
        ("--http-port", "1111"),
        ("--grpc-port", "2222"),
        ("--metrics-port", "3333"),
        ("--http-address", "127.0.0.1"),
        ("--grpc-address", "127.0.0.1"),
        ("--metrics-address", "127.0.0.1"),
        ("--model-control-mode", "explicit"),
        ("--load-model", "cats_dogs"),
        ("--pinned-memory-pool-byte-size", "0"),
        ("--allow-gpu-metrics", "false"),
    ]:
        assert command[command.index(flag) + 1] == value, flag
    assert f"python,shm-region-prefix-name={options.shm_prefix}" in joined
    assert TritonOptions().shm_prefix != options.shm_prefix  # two servers never share shared memory


def test_environment_puts_the_backend_venv_first_and_libpython_on_the_library_path() -> None:
    options = TritonOptions()
    env = server_env(options, base={"PATH": "/usr/bin", "PYTHONPATH": "/somewhere"})
    assert env["PATH"].split(":")[0] == str(options.backend_venv.resolve() / "bin")
    libs = env["LD_LIBRARY_PATH"].split(":")
    assert str(Path(sys.base_prefix) / "lib") in libs
    assert any(p.endswith("nvidia_pytriton.libs") for p in libs)
    assert "PYTHONPATH" not in env  # the project's numpy 2 must not leak into the backend


def test_backend_dir_holds_the_stub_next_to_the_python_backend(tmp_path: Path, backend_venv: Path) -> None:
    backends = prepare_backends(backend_venv, tmp_path / "backends")
    files = {p.name for p in (backends / "python").iterdir()}
    assert {"libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"} <= files


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.triton", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def test_cli_refuses_a_bad_port() -> None:
    result = _cli("start", "--http-port", "70000")
    assert result.returncode == 2
    assert "--http-port must be 1..65535" in result.stderr


def test_cli_explains_a_missing_model(tmp_path: Path) -> None:
    result = _cli("start", "--repository", str(tmp_path), "--pid-file", str(tmp_path / "t.pid"))
    assert result.returncode == 1
    assert "make export-onnx" in result.stderr and "config.pbtxt" in result.stderr


@pytest.mark.triton
@pytest.mark.slow
def test_cli_start_status_infer_stop(tmp_path: Path, trivial_repository: Path, ports: dict[str, int]) -> None:
    common = [
        "--repository",
        str(trivial_repository),
        "--http-port",
        str(ports["http"]),
        "--grpc-port",
        str(ports["grpc"]),
        "--metrics-port",
        str(ports["metrics"]),
        "--pid-file",
        str(tmp_path / "triton.pid"),
        "--log-file",
        str(tmp_path / "triton.log"),
    ]
    started = _cli("start", *common)
    try:
        assert started.returncode == 0, started.stderr + (tmp_path / "triton.log").read_text()
        assert "Triton ready" in started.stdout
        assert _cli("status", *common).returncode == 0
        # A real inference through the python backend: uint8 in, the numbers it must give out.
        body = json.dumps(
            {"inputs": [{"name": "image", "shape": [1, 8, 8, 3], "datatype": "UINT8", "data": [51] * 192}]}
        ).encode()
        url = f"http://127.0.0.1:{ports['http']}/v2/models/cats_dogs/infer"
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as response:
            outputs = json.loads(response.read())["outputs"][0]
        assert outputs["data"] == pytest.approx([0.2, 0.8])
        assert "triton.log" in started.stdout
        assert (tmp_path / "triton.log").stat().st_size > 0
    finally:
        stopped = _cli("stop", *common)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout
    assert _cli("status", *common).returncode == 1
    assert not (tmp_path / "triton.pid").exists()


def test_reload_without_a_server_is_a_no_op_that_says_so(tmp_path: Path, ports: dict[str, int]) -> None:
    # `make export-onnx` / `make rollback` run it after every export: no server means nothing to do.
    result = _cli("reload", "--http-port", str(ports["http"]), "--pid-file", str(tmp_path / "none.pid"))
    assert result.returncode == 0, result.stderr
    assert "no local Triton running" in result.stdout and "nothing to reload" in result.stdout


def test_reload_of_a_recorded_server_that_does_not_answer_is_a_clear_error(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    pid_file = tmp_path / "triton.pid"
    pid_file.write_text(str(os.getpid()))  # a live process, but no Triton on the port
    result = _cli("reload", "--http-port", str(ports["http"]), "--pid-file", str(pid_file))
    assert result.returncode == 1
    assert "not reachable" in result.stderr
