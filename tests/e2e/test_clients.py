"""The real coding agents through dragoman: Claude Code 2.1.332 against OpenAI-dialect, Gemini and
DeepSeek models, Codex CLI 0.169.0 against Anthropic and Chat models, Gemini CLI 0.61.0 against
Anthropic, Chat and Gemini models, offline, with the scripted mock upstream.

The clients are installed by scripts/test.sh into .scratch/clients. If npm could not reach its
registry they are absent and these tests are skipped, loudly.
"""
import json
import os
import subprocess
import tempfile
import urllib.request

import pytest

from conftest import MASTER_KEY, ROOT

CLIENTS = os.path.join(ROOT, ".scratch", "clients", "node_modules", ".bin")
CLAUDE = os.path.join(CLIENTS, "claude")
CODEX = os.path.join(CLIENTS, "codex")
GEMINI = os.path.join(CLIENTS, "gemini")

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CLAUDE) and os.path.exists(CODEX) and os.path.exists(GEMINI)),
    reason="SKIPPED LOUDLY: Claude Code / Codex CLI / Gemini CLI not installed (npm registry unreachable?)",
)


def mock_requests(gateway_info):
    with urllib.request.urlopen(gateway_info["mock"] + "/mock/requests") as r:
        return json.loads(r.read())


def claude(gateway, model, prompt, tools=False, key=MASTER_KEY):
    run = tempfile.mkdtemp()
    home, work = os.path.join(run, "home"), os.path.join(run, "work")
    os.makedirs(home)
    os.makedirs(work)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": home,
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "CLAUDE_CONFIG_DIR": os.path.join(home, ".claude"),
        "ANTHROPIC_BASE_URL": gateway,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }
    args = [CLAUDE, "-p", prompt, "--output-format", "json"] + (["--allowedTools", "Bash"] if tools else [])
    out = subprocess.run(args, env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), work


def codex(gateway, model, prompt, key=MASTER_KEY, as_openai=False, extra=()):
    """Codex headless. `as_openai`: Codex takes dragoman for OpenAI itself (its built-in provider
    with a base URL), so it compacts remotely (`/v1/responses/compact`) instead of locally."""
    run = tempfile.mkdtemp()
    paths = {k: os.path.join(run, k) for k in ("home", "codex_home", "work")}
    for p in paths.values():
        os.makedirs(p)
    env = {"PATH": os.environ["PATH"], "HOME": paths["home"], "CODEX_HOME": paths["codex_home"], "DRAGOMAN_API_KEY": key}
    if as_openai:
        env["OPENAI_API_KEY"] = env["CODEX_API_KEY"] = key
        chosen = ["-c", 'openai_base_url="' + gateway + '/v1"']
    else:
        provider = (
            'model_providers.dragoman={name="dragoman",base_url="' + gateway + '/v1",wire_api="responses",'
            'env_key="DRAGOMAN_API_KEY",request_max_retries=1,stream_max_retries=1,stream_idle_timeout_ms=20000}'
        )
        chosen = ["-c", "model_provider=dragoman", "-c", provider]
    args = [
        CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "--dangerously-bypass-approvals-and-sandbox",
        "--disable", "unbounded_connection_retries", "--disable", "plugins", "--disable", "remote_plugin",
        *chosen, *extra, "-m", model,
        "-c", "analytics.enabled=false", "-c", "check_for_update_on_startup=false", "--json", prompt,
    ]
    out = subprocess.run(args, env=env, cwd=paths["work"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    events = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    return events, paths["work"]


def gemini(gateway, model, prompt, key=MASTER_KEY):
    """Gemini CLI headless, with an API key and dragoman as its Gemini API (GOOGLE_GEMINI_BASE_URL)."""
    run = tempfile.mkdtemp()
    home, work = os.path.join(run, "home"), os.path.join(run, "work")
    os.makedirs(os.path.join(home, ".gemini"))
    os.makedirs(work)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }
    with open(os.path.join(home, ".gemini", "settings.json"), "w") as f:
        json.dump(settings, f)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": home,
        "TERM": "dumb",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_API_KEY": key,
        "GOOGLE_GEMINI_BASE_URL": gateway,
    }
    args = [GEMINI, "-p", prompt, "-m", model, "--approval-mode", "yolo", "--output-format", "json"]
    out = subprocess.run(args, env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout), work


@pytest.mark.parametrize("up", ["a", "c", "g"])
def test_gemini_cli_text_turn_reports_cache_reads(gateway, up):
    result, _ = gemini(gateway, f"{up}/script/cached", "say hi")
    assert result["response"] == "Hello from the mock."
    tokens = [m["tokens"] for m in result["stats"]["models"].values()]
    assert tokens and tokens[0]["prompt"] == 1234 and tokens[0]["cached"] == 1024 and tokens[0]["candidates"] == 12


@pytest.mark.parametrize("up", ["a", "c", "g"])
def test_gemini_cli_runs_its_shell_tool_and_sends_the_result_back(gateway, gateway_mock, up):
    result, work = gemini(gateway, f"{up}/script/tools", "Create the marker file")
    assert result["response"] == "The tool ran."
    with open(os.path.join(work, "dragoman_tool_marker.txt")) as f:
        assert f.read().strip() == "dragoman-tool-ok"
    last = mock_requests(gateway_mock)[-1]["body"]
    assert "dragoman-tool-ok" in json.dumps(last)
    if up == "a":
        results = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
        assert results and results[0]["tool_use_id"] == "call_mock_1"
    elif up == "c":
        tools = [m for m in last["messages"] if m["role"] == "tool"]
        assert tools and tools[0]["tool_call_id"] == "call_mock_1"
    else:
        responses = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
        assert responses and responses[0]["name"] == "run_shell_command"


def test_claude_code_tool_loop_through_a_deepseek_thinking_model(gateway, gateway_mock):
    """The DeepSeek mock refuses a turn whose history lost its reasoning_content, as DeepSeek's
    thinking models do; the loop completes because dragoman writes it back."""
    result, work = claude(gateway, "ds/script/think-tools", "Create the marker file using the Bash tool", tools=True)
    assert result["is_error"] is False, result
    assert result["num_turns"] == 2, result
    assert result["result"] == "The tool ran."
    last = mock_requests(gateway_mock)[-1]["body"]
    assistant = [m for m in last["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert assistant and assistant[0]["reasoning_content"] == "I should use the tool."


@pytest.mark.parametrize("up", ["r", "c", "g"])
def test_claude_code_text_turn_reports_cache_reads(gateway, up):
    result, _ = claude(gateway, f"{up}/script/cached", "say hi")
    assert result["is_error"] is False
    assert result["result"] == "Hello from the mock."
    assert result["usage"]["input_tokens"] == 210
    assert result["usage"]["cache_read_input_tokens"] == 1024


@pytest.mark.parametrize("up", ["r", "c", "g"])
def test_claude_code_runs_bash_and_sends_the_result_back(gateway, gateway_mock, up):
    result, work = claude(gateway, f"{up}/script/tools", "Create the marker file using the Bash tool", tools=True)
    assert result["num_turns"] == 2, result
    assert result["result"] == "The tool ran."
    with open(os.path.join(work, "dragoman_tool_marker.txt")) as f:
        assert f.read().strip() == "dragoman-tool-ok"
    last = mock_requests(gateway_mock)[-1]["body"]
    if up == "r":
        outputs = [i for i in last["input"] if i.get("type") == "function_call_output"]
        assert outputs and outputs[0]["call_id"] == "call_mock_1"
        assert "dragoman-tool-ok" in json.dumps(outputs[0]["output"])
    elif up == "g":
        responses = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
        assert responses and responses[0]["name"] == "Bash"
        assert "dragoman-tool-ok" in json.dumps(responses[0]["response"])
    else:
        tools = [m for m in last["messages"] if m["role"] == "tool"]
        assert tools and tools[0]["tool_call_id"] == "call_mock_1"


@pytest.mark.parametrize("up", ["a", "c"])
def test_codex_text_turn(gateway, up):
    events, _ = codex(gateway, f"{up}/script/cached", "say hi")
    messages = [e["item"]["text"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"]
    assert messages == ["Hello from the mock."]
    done = [e for e in events if e["type"] == "turn.completed"][0]
    assert done["usage"]["input_tokens"] == 1234
    assert done["usage"]["cached_input_tokens"] == 1024


@pytest.mark.parametrize("up", ["a", "c"])
def test_codex_runs_its_shell_tool_with_the_call_id_kept(gateway, gateway_mock, up):
    events, work = codex(gateway, f"{up}/script/tools", "Create the marker file")
    commands = [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "command_execution"]
    assert commands and commands[0]["exit_code"] == 0
    with open(os.path.join(work, "dragoman_tool_marker.txt")) as f:
        assert f.read().strip() == "dragoman-tool-ok"
    last = mock_requests(gateway_mock)[-1]["body"]
    if up == "a":
        results = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
        assert results and results[0]["tool_use_id"] == "call_mock_1"
    else:
        tools = [m for m in last["messages"] if m["role"] == "tool"]
        assert tools and tools[0]["tool_call_id"] == "call_mock_1"


def test_codex_compacts_remotely_on_an_anthropic_model(gateway, gateway_mock):
    """Codex, taking dragoman for OpenAI, compacts its conversation between turns (a tiny
    auto-compact limit): dragoman asks the Claude deployment for the summary, and the turn after
    the compaction carries it to the upstream as a user message."""
    events, work = codex(gateway, "a/script/compacting", "Create the marker file", as_openai=True,
                         extra=["-c", "model_auto_compact_token_limit=100"])
    assert any(e["type"] == "turn.completed" for e in events), events[-3:]
    with open(os.path.join(work, "dragoman_tool_marker.txt")) as f:
        assert f.read().strip() == "dragoman-tool-ok"
    bodies = [r["body"] for r in mock_requests(gateway_mock) if r["body"].get("model") == "script/compacting"]
    asks = [i for i, b in enumerate(bodies) if "Context checkpoint" in json.dumps(b["messages"])]
    assert asks, "no compaction reached the upstream"
    after = bodies[asks[0] + 1:]
    assert any("was compacted. Its summary:" in json.dumps(b["messages"]) and "SUMMARY-TOOL-RAN" in json.dumps(b["messages"])
               for b in after), json.dumps(after[-1]["messages"])[:2000] if after else "no turn after the compaction"
    assert not any("dragoman-compaction-v1" in json.dumps(b) for b in bodies)


def test_claude_code_replays_openai_reasoning_byte_identical(gateway, gateway_mock):
    """Encrypted reasoning from a Responses upstream rides in the thinking signature and comes
    back to the upstream unchanged on the next turn."""
    result, _ = claude(gateway, "r/script/reasoning-tools", "Create the marker file using the Bash tool", tools=True)
    assert result["num_turns"] == 2, result
    last = mock_requests(gateway_mock)[-1]["body"]
    reasoning = [i for i in last["input"] if i.get("type") == "reasoning"]
    assert reasoning, json.dumps(last["input"])[:2000]
    assert reasoning[0]["id"] == "rs_mock_1"
    assert reasoning[0]["encrypted_content"] == "enc-mock-1"


def test_codex_replays_anthropic_thinking_byte_identical(gateway, gateway_mock):
    """An Anthropic thinking signature rides in Codex's encrypted_content and comes back to the
    upstream unchanged on the next turn."""
    events, _ = codex(gateway, "a/script/reasoning-tools", "Create the marker file")
    assert any(e["type"] == "turn.completed" for e in events)
    last = mock_requests(gateway_mock)[-1]["body"]
    thinking = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "thinking"]
    assert thinking, json.dumps(last["messages"])[:2000]
    assert thinking[0]["signature"] == "sig-mock-1"
    assert thinking[0]["thinking"] == "I should use the tool."


def test_count_tokens_answers_a_claude_code_body(gateway):
    body = json.load(open(os.path.join(ROOT, "test_data", "anthropic", "requests", "client__claude-code-text-turn.json")))
    for model, how in (("a/any", "provider"), ("r/gpt-5", "local")):
        req = {"model": model, "messages": body["messages"], "system": body.get("system"), "tools": body.get("tools")}
        r = urllib.request.Request(
            gateway + "/v1/messages/count_tokens?beta=true",
            data=json.dumps(req).encode(),
            headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"},
        )
        with urllib.request.urlopen(r) as resp:
            assert resp.headers["x-dragoman-token-count"].startswith(how)
            assert json.loads(resp.read())["input_tokens"] > 0


def _admin(gateway, method, path, body=None):
    req = urllib.request.Request(
        gateway + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_claude_code_and_codex_on_their_own_keys_are_accounted_per_key_and_team(gateway):
    team = _admin(gateway, "POST", "/team/new", {"team_alias": "agents", "rpm_limit": 1000})["team_id"]
    cc = _admin(gateway, "POST", "/key/generate", {"key_alias": "ann-claude-code", "team_id": team, "max_budget": 5})
    cx = _admin(gateway, "POST", "/key/generate", {"key_alias": "bob-codex", "team_id": team, "models": ["a/*"]})
    result, _ = claude(gateway, "c/script/cached", "say hi", key=cc["key"])
    assert result["is_error"] is False and result["result"] == "Hello from the mock."
    events, _ = codex(gateway, "a/script/cached", "say hi", key=cx["key"])
    assert any(e["type"] == "item.completed" and e["item"]["type"] == "agent_message" for e in events)
    # Each agent's calls are its key's, and its team's.
    import time
    time.sleep(0.5)
    for k, alias in ((cc, "ann-claude-code"), (cx, "bob-codex")):
        logs = _admin(gateway, "GET", f"/spend/logs?api_key={k['token']}&limit=100")
        assert logs, alias
        assert all(r["key_alias"] == alias and r["team_id"] == team and r["principal"] == alias for r in logs)
        assert all(r["outcome"] == "ok" for r in logs), logs
    # A key that may not use a model is refused, and the agent says why.
    with pytest.raises(AssertionError) as refused:
        codex(gateway, "c/script/cached", "say hi", key=cx["key"])
    assert "may not use model" in str(refused.value)
