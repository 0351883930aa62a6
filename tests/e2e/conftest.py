"""Starts the mock upstream and `dragoman serve` (release or debug build) for the SDK tests.

Why here: the official SDKs are the clients that matter; they parse what dragoman sends with
their own code, so a grammar or usage mistake shows up as an SDK error or a wrong number.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("DRAGOMAN_BIN_DIR", os.path.join(ROOT, "target", "debug"))
MASTER_KEY = "sk-e2e-master"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/health/liveliness", timeout=20):
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


class Own:
    """A gateway a test started for itself: its URL, process, work directory and log file."""

    def __init__(self, url, proc, work, log):
        self.url, self.proc, self.work, self.log = url, proc, work, log


@contextlib.contextmanager
def own_gateway(config):
    """A mock upstream and a gateway of the test's own, for tests whose keys, teams or load
    must not meet the session gateway's; `config(mock_port, work_dir)` returns its YAML."""
    mock_port = free_port()
    mock = subprocess.Popen([os.path.join(BIN_DIR, "dragoman-mock"), str(mock_port)], stdout=subprocess.PIPE, text=True)
    assert "listening" in mock.stdout.readline()
    work = tempfile.mkdtemp()
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(config(mock_port, work))
    port = free_port()
    log = open(os.path.join(work, "gateway.log"), "w+")
    gw = subprocess.Popen(
        [os.path.join(BIN_DIR, "dragoman"), "serve", "--config", cfg, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(port)
        yield Own(f"http://127.0.0.1:{port}", gw, work, log)
    finally:
        gw.terminate()
        mock.terminate()
        gw.wait(10)
        mock.wait(10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


_MOCK_URL = {}


@pytest.fixture(scope="session")
def gateway_mock(gateway):
    """The mock upstream behind the session gateway, for inspecting what it received."""
    return {"mock": _MOCK_URL["url"]}


@pytest.fixture(scope="session")
def gateway():
    mock_port = free_port()
    mock = subprocess.Popen([os.path.join(BIN_DIR, "dragoman-mock"), str(mock_port)], stdout=subprocess.PIPE, text=True)
    line = mock.stdout.readline()
    assert "listening" in line, line
    _MOCK_URL["url"] = f"http://127.0.0.1:{mock_port}"
    port = free_port()
    # Nothing listens there: the `routed` group's dead deployment.
    dead_port = free_port()
    config = f"""
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "http://127.0.0.1:{mock_port}", api_key: sk-up}}
  - model_name: "c/*"
    litellm_params: {{model: "openai/*", api_base: "http://127.0.0.1:{mock_port}/v1", api_key: sk-up}}
  - model_name: "r/*"
    litellm_params: {{model: "openai/*", api_base: "http://127.0.0.1:{mock_port}/v1", api_key: sk-up}}
    model_info: {{mode: responses}}
  - model_name: "g/*"
    litellm_params: {{model: "gemini/*", api_base: "http://127.0.0.1:{mock_port}", api_key: sk-up}}
  - model_name: "ds/*"
    litellm_params: {{model: "deepseek/*", api_base: "http://127.0.0.1:{mock_port}/v1", api_key: sk-up}}
  - model_name: routed
    litellm_params: {{model: "openai/script/text", api_base: "http://127.0.0.1:{dead_port}/v1", api_key: sk-up}}
    model_info: {{id: dead}}
  - model_name: routed
    litellm_params: {{model: "anthropic/script/text", api_base: "http://127.0.0.1:{mock_port}", api_key: sk-up}}
    model_info: {{id: live}}
general_settings:
  master_key: {MASTER_KEY}
dragoman_settings:
  database_path: {os.path.join(tempfile.mkdtemp(), "e2e.db")}
"""
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(config)
    cfg.close()
    gw = subprocess.Popen(
        [os.path.join(BIN_DIR, "dragoman"), "--config", cfg.name, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        gw.terminate()
        mock.terminate()
        gw.wait(10)
        mock.wait(10)
        os.unlink(cfg.name)
