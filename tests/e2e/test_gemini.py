"""The official `google-genai` Python SDK against a running dragoman: the Gemini dialect in front
of Anthropic, Chat, Responses and Gemini upstreams.

Scripted upstream usage: 1234 prompt tokens of which 1024 cached, 12 output tokens; a Gemini
client reads promptTokenCount 1234 (it includes the cached share), cachedContentTokenCount 1024
and candidatesTokenCount 12.
"""
from google import genai
from google.genai import types
import pytest

from conftest import MASTER_KEY

UPSTREAMS = ["a", "c", "r", "g"]


_CLIENTS = []


def client(url, key=MASTER_KEY):
    # The SDK closes its HTTP client when the Client object is collected, even mid-call: keep
    # every one alive for the session.
    c = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url))
    _CLIENTS.append(c)
    return c


@pytest.mark.parametrize("up", UPSTREAMS)
def test_generate_content_whole(gateway, up):
    r = client(gateway).models.generate_content(model=f"{up}/script/cached", contents="Say hello")
    assert r.text == "Hello from the mock."
    u = r.usage_metadata
    assert (u.prompt_token_count, u.cached_content_token_count, u.candidates_token_count) == (1234, 1024, 12)
    assert r.candidates[0].finish_reason == types.FinishReason.STOP


@pytest.mark.parametrize("up", UPSTREAMS)
def test_generate_content_streamed(gateway, up):
    chunks = list(client(gateway).models.generate_content_stream(model=f"{up}/script/cached", contents="Say hello"))
    assert "".join(c.text or "" for c in chunks) == "Hello from the mock."
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    u = last.usage_metadata
    assert (u.prompt_token_count, u.cached_content_token_count, u.candidates_token_count) == (1234, 1024, 12)


def get_weather(city: str) -> str:
    """Returns the weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("up", UPSTREAMS)
def test_automatic_function_calling_round_trip(gateway, gateway_mock, up):
    """The SDK runs the tool the model asked for and sends its result back: the upstream gets it
    as its own dialect's tool result, paired with its call."""
    r = client(gateway).models.generate_content(
        model=f"{up}/script/tools",
        contents="What is the weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert r.text == "The tool ran."
    history = r.automatic_function_calling_history
    calls = [p.function_call for c in history for p in (c.parts or []) if p.function_call]
    assert calls and calls[0].name == "get_weather" and calls[0].args == {"city": "Paris"}
    import json, urllib.request

    with urllib.request.urlopen(gateway_mock["mock"] + "/mock/requests") as resp:
        last = json.loads(resp.read())[-1]["body"]
    sent = json.dumps(last)
    assert "sunny in Paris" in sent
    if up == "a":
        results = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
        assert results and results[0]["tool_use_id"] == "call_mock_1"
    elif up == "c":
        assert [m for m in last["messages"] if m["role"] == "tool"][0]["tool_call_id"] == "call_mock_1"
    elif up == "r":
        assert [i for i in last["input"] if i.get("type") == "function_call_output"][0]["call_id"] == "call_mock_1"


def test_count_tokens(gateway):
    r = client(gateway).models.count_tokens(model="c/script/text", contents="Hello there, how are you?")
    assert 4 <= r.total_tokens < 60


def test_bad_key_is_a_gemini_error(gateway):
    with pytest.raises(genai.errors.ClientError) as e:
        client(gateway, key="sk-wrong").models.generate_content(model="c/script/text", contents="hi")
    assert e.value.code == 401
