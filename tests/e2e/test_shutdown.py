"""SIGTERM under load: every accepted request finishes and leaves exactly one usage record."""
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading

import openai

from conftest import BIN_DIR, free_port, wait_http


def test_sigterm_drains_streams_and_flushes_usage_records():
    mock_port = free_port()
    mock = subprocess.Popen([os.path.join(BIN_DIR, "dragoman-mock"), str(mock_port)], stdout=subprocess.PIPE, text=True)
    assert "listening" in mock.stdout.readline()
    work = tempfile.mkdtemp()
    db = os.path.join(work, "usage.db")
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"""
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "http://127.0.0.1:{mock_port}"}}
  - model_name: "r/*"
    litellm_params: {{model: "openai/*", api_base: "http://127.0.0.1:{mock_port}/v1"}}
    model_info: {{mode: responses}}
dragoman_settings:
  database_path: {db}
  shutdown_grace_seconds: 20
"""
        )
    port = free_port()
    gw = subprocess.Popen(
        [os.path.join(BIN_DIR, "dragoman"), "serve", "--config", cfg, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        n = 10
        started = threading.Barrier(n + 1)
        results = [None] * n

        def run(i):
            text = ""
            model = ["a", "r"][i % 2] + "/script/slow"
            stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
            first = True
            for chunk in stream:
                if first:
                    started.wait(30)
                    first = False
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
            results[i] = text

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        started.wait(30)
        gw.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert gw.wait(30) == 0
        assert all(r == "Hello from the mock." for r in results), results
        rows = sqlite3.connect(db).execute("select outcome, count(*) from usage_records group by outcome").fetchall()
        assert rows == [("ok", n)], rows
    finally:
        if gw.poll() is None:
            gw.kill()
        mock.terminate()
        mock.wait(10)
