"""Virtual keys across two gateway processes sharing PostgreSQL and Redis, driven by the
official SDKs: a key with rpm_limit 60 gets exactly 60 of 200 calls spread over both; a key
deleted on one is refused by the other within a second; Anthropic clients read their own
rate-limit headers; and no key appears in either process's debug log, in /metrics or in the
database.
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import anthropic
import openai
import pytest

from conftest import BIN_DIR, MASTER_KEY, free_port, wait_http

PG = os.environ.get("DRAGOMAN_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def psql(sql):
    return subprocess.run(["psql", PG, "-v", "ON_ERROR_STOP=1", "-tAc", sql], check=True, capture_output=True, text=True).stdout


def admin(base, path, body):
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def two_instances():
    if PG == "skip" or shutil.which("redis-server") is None:
        pytest.skip("needs PostgreSQL and redis-server")
    work = tempfile.mkdtemp()
    schema = f"dragoman_e2e_{os.getpid()}_{int(time.time())}"
    psql(f"CREATE SCHEMA {schema}")
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    mock_port = free_port()
    mock = subprocess.Popen([os.path.join(BIN_DIR, "dragoman-mock"), str(mock_port)], stdout=subprocess.PIPE, text=True)
    assert "listening" in mock.stdout.readline()
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"""
model_list:
  - model_name: "c/*"
    litellm_params: {{model: "openai/*", api_base: "http://127.0.0.1:{mock_port}/v1", api_key: sk-up}}
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "http://127.0.0.1:{mock_port}", api_key: sk-up}}
general_settings:
  master_key: {MASTER_KEY}
  database_url: "{PG}?options=-csearch_path%3D{schema}"
router_settings:
  redis_host: 127.0.0.1
  redis_port: {redis_port}
"""
        )
    procs, bases, logs = [], [], []
    for name in ("a", "b"):
        port = free_port()
        log = open(os.path.join(work, f"{name}.log"), "w")
        env = dict(os.environ, DRAGOMAN_LOG="debug")
        procs.append(
            subprocess.Popen(
                [os.path.join(BIN_DIR, "dragoman"), "serve", "--config", cfg, "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        logs.append(log.name)
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for b in bases:
            wait_http(int(b.rsplit(":", 1)[1]))
        yield {"bases": bases, "logs": logs, "schema": schema}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        for p in (mock, redis):
            p.terminate()
            p.wait(10)
        psql(f"DROP SCHEMA {schema} CASCADE")
        shutil.rmtree(work, ignore_errors=True)


def wait_until(check, timeout=3.0):
    started = time.time()
    while not check():
        assert time.time() - started < timeout, "not within the time allowed"
        time.sleep(0.02)
    return time.time() - started


def test_limits_hold_across_two_processes_and_no_key_leaks(two_instances):
    a, b = two_instances["bases"]
    made = admin(a, "/key/generate", {"key_alias": "e2e", "rpm_limit": 60})
    key = made["key"]
    clients = [openai.OpenAI(base_url=f"{u}/v1", api_key=key, max_retries=0) for u in (a, b)]

    def served_by_b():
        try:
            clients[1].models.list()
            return True
        except openai.AuthenticationError:
            return False

    wait_until(served_by_b)

    def call(i):
        try:
            r = clients[i % 2].chat.completions.create(model="c/m", messages=[{"role": "user", "content": "hi"}])
            assert r.choices[0].message.content
            return 200
        except openai.RateLimitError as e:
            assert "60 requests per minute" in str(e)
            return 429

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(200)))
    assert (results.count(200), results.count(429)) == (60, 140)

    # An Anthropic client reads Anthropic's names for the same limits.
    other = admin(a, "/key/generate", {"rpm_limit": 30, "tpm_limit": 1000000})["key"]
    ac = anthropic.Anthropic(base_url=b, api_key=other, max_retries=0)
    wait_until(lambda: _works(ac))
    raw = ac.messages.with_raw_response.create(model="a/m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "30"
    assert int(raw.headers["anthropic-ratelimit-requests-remaining"]) < 30
    assert raw.headers["anthropic-ratelimit-tokens-limit"] == "1000000"

    # Deleted on A, refused by B within a second.
    admin(a, "/key/delete", {"keys": [other]})
    took = wait_until(lambda: not _works(ac), timeout=1.0)
    print(f"a key deleted on A was refused by B after {took:.3f} s")

    # Spend per key, across both instances' records.
    with urllib.request.urlopen(
        urllib.request.Request(f"{b}/key/info?key={key}", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    ) as r:
        info = json.loads(r.read())["info"]
    assert info["key_alias"] == "e2e" and info["rpm_limit"] == 60

    # No key anywhere: logs at debug, /metrics, the database.
    texts = [open(p).read() for p in two_instances["logs"]]
    for base in (a, b):
        with urllib.request.urlopen(urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})) as r:
            texts.append(r.read().decode())
    schema = two_instances["schema"]
    texts.append(psql(f"SELECT * FROM {schema}.tenancy"))
    texts.append(psql(f"SELECT * FROM {schema}.usage_records"))
    for secret in (key, other, MASTER_KEY):
        for t in texts:
            assert secret not in t
    assert made["token"] in texts[-2], "the database holds the key's hash"
    assert "request done" in texts[0] and "request done" in texts[1], "both instances served and logged"


def _works(client):
    try:
        client.messages.create(model="a/m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        return True
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError):
        return False
