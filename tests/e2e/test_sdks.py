"""The official `anthropic` and `openai` Python SDKs against a running dragoman.

Scripted upstream usage: 1234 prompt tokens of which 1024 cached, 12 output tokens. An Anthropic
client must read input_tokens 210 and cache_read_input_tokens 1024; an OpenAI client must read
1234 prompt/input tokens with 1024 cached.
"""
import json
import urllib.request

import anthropic
import openai
import pytest

from conftest import MASTER_KEY

UPSTREAMS = {"responses": "r", "chat": "c", "anthropic": "a"}


def ant(url, key=MASTER_KEY):
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)


def oai(url, key=MASTER_KEY):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("up", ["responses", "chat"])
def test_anthropic_messages_whole(gateway, up):
    m = ant(gateway).messages.create(
        model=f"{UPSTREAMS[up]}/script/cached", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert m.content[0].text == "Hello from the mock."
    assert m.usage.input_tokens == 210
    assert m.usage.cache_read_input_tokens == 1024
    assert m.usage.output_tokens == 12


@pytest.mark.parametrize("up", ["responses", "chat"])
def test_anthropic_messages_streamed(gateway, up):
    start_input = None
    with ant(gateway).messages.stream(
        model=f"{UPSTREAMS[up]}/script/cached", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        for ev in s:
            if ev.type == "message_start":
                start_input = ev.message.usage.input_tokens
        final = s.get_final_message()
    assert start_input and start_input > 0, "message_start carries a local estimate, never zero"
    assert final.content[0].text == "Hello from the mock."
    assert final.usage.input_tokens == 210
    assert final.usage.cache_read_input_tokens == 1024
    assert final.usage.output_tokens == 12


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_from_anthropic(gateway, stream):
    c = oai(gateway)
    if not stream:
        r = c.chat.completions.create(model="a/script/cached", messages=[{"role": "user", "content": "hi"}])
        text, usage = r.choices[0].message.content, r.usage
    else:
        text, usage = "", None
        for chunk in c.chat.completions.create(
            model="a/script/cached", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = chunk.usage
    assert text == "Hello from the mock."
    assert usage.prompt_tokens == 1234
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens == 12


@pytest.mark.parametrize("stream", [False, True])
def test_openai_responses_from_anthropic(gateway, stream):
    c = oai(gateway)
    if not stream:
        r = c.responses.create(model="a/script/cached", input="hi")
    else:
        r = None
        for ev in c.responses.create(model="a/script/cached", input="hi", stream=True):
            if ev.type == "response.completed":
                r = ev.response
    assert r.output_text == "Hello from the mock."
    assert r.usage.input_tokens == 1234
    assert r.usage.input_tokens_details.cached_tokens == 1024
    assert r.usage.output_tokens == 12


def test_anthropic_tool_round_trip_through_chat(gateway):
    client = ant(gateway)
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    msgs = [{"role": "user", "content": "weather?"}]
    with client.messages.stream(model="c/script/tools", max_tokens=100, tools=tools, messages=msgs) as s:
        m = s.get_final_message()
    assert m.stop_reason == "tool_use"
    call = next(b for b in m.content if b.type == "tool_use")
    assert call.input == {"city": "Paris"}
    msgs += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    m2 = client.messages.create(model="c/script/text", max_tokens=100, tools=tools, messages=msgs)
    assert m2.stop_reason == "end_turn"


def test_openai_tool_round_trip_through_anthropic(gateway):
    c = oai(gateway)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    msgs = [{"role": "user", "content": "weather?"}]
    r = c.chat.completions.create(model="a/script/tools", messages=msgs, tools=tools)
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    msgs += [r.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    r2 = c.chat.completions.create(model="a/script/text", messages=msgs, tools=tools)
    assert r2.choices[0].finish_reason == "stop"

    # The Responses client, the same way.
    rtools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    r = c.responses.create(model="a/script/tools", input="weather?", tools=rtools)
    fc = next(i for i in r.output if i.type == "function_call")
    assert json.loads(fc.arguments) == {"city": "Paris"}
    follow = [{"role": "user", "content": "weather?"}] + [i.model_dump(exclude_none=True) for i in r.output] + [
        {"type": "function_call_output", "call_id": fc.call_id, "output": "sunny"}
    ]
    r2 = c.responses.create(model="a/script/text", input=follow, tools=rtools)
    assert r2.output_text == "Hello from the mock."


def test_wrong_key_is_401_in_each_sdk(gateway):
    with pytest.raises(anthropic.AuthenticationError):
        ant(gateway, "sk-wrong").messages.create(model="c/script/text", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        oai(gateway, "sk-wrong").chat.completions.create(model="a/script/text", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("up", ["responses", "chat", "anthropic"])
def test_mid_stream_failure_is_an_error_not_a_success(gateway, up):
    model = f"{UPSTREAMS[up]}/script/midstream"
    with pytest.raises(anthropic.APIError):
        with ant(gateway).messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
            for _ in s:
                pass
    with pytest.raises(openai.APIError):
        for _ in oai(gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True):
            pass
    kinds = []
    try:
        for ev in oai(gateway).responses.create(model=model, input="hi", stream=True):
            kinds.append(ev.type)
    except openai.APIError:
        kinds.append("raised")
    assert "response.completed" not in kinds
    assert kinds[-1] in ("response.failed", "raised"), kinds


def test_metrics_parse_as_openmetrics_and_count_what_was_done(gateway):
    import urllib.request

    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    ant(gateway).messages.create(model="c/script/cached", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with urllib.request.urlopen(gateway + "/metrics") as r:
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = families["dragoman_requests"]
    ok = [s for s in requests.samples if s.labels.get("outcome") == "ok" and s.labels.get("model") == "c/*"]
    assert ok and ok[0].value >= 1
    tokens = families["dragoman_tokens"]
    assert any(s.labels["bucket"] == "cache_read" and s.value >= 1024 for s in tokens.samples)
    assert "dragoman_request_duration_seconds" in families
    assert "dragoman_usage_writer_backlog" in families


def test_spend_logs_record_the_exact_buckets(gateway):
    import urllib.request

    m = ant(gateway).messages.create(model="r/script/cached", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert m.usage.cache_read_input_tokens == 1024
    rows = []
    for _ in range(100):
        req = urllib.request.Request(gateway + "/spend/logs?limit=5&model=r/script/cached", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        with urllib.request.urlopen(req) as r:
            rows = json.loads(r.read())
        if rows:
            break
        import time

        time.sleep(0.05)
    assert rows, "the usage record reached the store"
    assert rows[0]["usage"]["input_uncached"] == 210
    assert rows[0]["usage"]["cache_read"] == 1024
    assert rows[0]["upstream_dialect"] == "responses"
    assert rows[0]["client_dialect"] == "anthropic"


def test_a_group_with_a_dead_deployment_serves_every_call(gateway):
    """The routing issue's acceptance: one dead and one live deployment (another dialect), 50
    calls from the official SDKs with their own retries off: every one is served."""
    oa = openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER_KEY, max_retries=0)
    an = anthropic.Anthropic(base_url=gateway, api_key=MASTER_KEY, max_retries=0)
    served = 0
    for i in range(25):
        if i % 2:
            stream = oa.chat.completions.create(
                model="routed", stream=True, messages=[{"role": "user", "content": "hi"}]
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        else:
            r = oa.chat.completions.with_raw_response.create(
                model="routed", messages=[{"role": "user", "content": "hi"}]
            )
            assert r.headers["x-dragoman-deployment"] == "live"
            text = r.parse().choices[0].message.content
        served += bool(text)
        m = an.messages.create(
            model="routed", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        served += bool(m.content[0].text)
    assert served == 50


@pytest.mark.parametrize("model", ["a/script/reasoning", "g/script/text", "c/script/text"])
def test_openai_responses_conversation_state_on_any_upstream(gateway, gateway_mock, model):
    """previous_response_id and responses.retrieve / input_items / delete through the SDK,
    with the model served by Anthropic, Gemini or Chat: the upstream sees the whole history."""
    c = oai(gateway)
    r1 = c.responses.create(model=model, input="first question")
    r2 = c.responses.create(model=model, input="second question", previous_response_id=r1.id)
    assert r2.output_text
    seen = json.loads(urllib.request.urlopen(gateway_mock["mock"] + "/mock/requests").read())[-1]["body"]
    assert "first question" in json.dumps(seen) and "second question" in json.dumps(seen)
    assert c.responses.retrieve(r2.id).id == r2.id
    items = c.responses.input_items.list(r1.id)
    assert [i.content if isinstance(i.content, str) else i.content[0].text for i in items.data] == ["first question"]
    c.responses.delete(r1.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r1.id)
