"""Amazon Bedrock and embeddings through the official SDKs, with every Bedrock call's SigV4
signature checked by botocore.

Why botocore: dragoman signs with the `aws-sigv4` crate; a signer checking itself proves
nothing. Here a fake Bedrock endpoint recomputes each request's signature with botocore's own
SigV4Auth (the canonical request, double-encoded path, signed headers and the request's own
X-Amz-Date) and refuses a request whose signature differs, as Bedrock does. Requests that pass are
forwarded to the mock upstream, which answers as Bedrock.
"""
import base64
import http.server
import json
import os
import struct
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request

import anthropic
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import BIN_DIR, MASTER_KEY, free_port, wait_http

GOOD = ("AKIDE2EEXAMPLE", "e2e-secret-key/with+chars")
SESSION = ("ASIAE2ESESSION", "session-secret", "session-token-value")
CONTAINER = ("ASIAE2ECONTAINER", "container-secret", "container-token")
CONTAINER_AUTH = "container-auth-token"


class Verifier:
    def __init__(self, mock_url):
        self.mock_url = mock_url
        self.valid = 0
        self.refused = []
        self.credential_fetches = 0
        self.lock = threading.Lock()


def check_signature(v, method, path, headers, body):
    """Recomputes the signature with botocore; returns None when it matches, else why not."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "not SigV4"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key_id, date, region, service, _ = fields["Credential"].split("/")
    if service != "bedrock":
        return f"signed for {service}"
    secrets = {GOOD[0]: (GOOD[1], None), SESSION[0]: (SESSION[1], SESSION[2]), CONTAINER[0]: (CONTAINER[1], CONTAINER[2])}
    if key_id not in secrets:
        return f"unknown key {key_id}"
    secret, token = secrets[key_id]
    if token is not None and headers.get("x-amz-security-token") != token:
        return "missing or wrong session token"
    signed = fields["SignedHeaders"].split(";")
    for required in ("host", "x-amz-date"):
        if required not in signed:
            return f"{required} is not signed"
    req = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{path}",
        data=body,
        headers={h: headers[h] for h in signed if h in headers},
    )
    req.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key_id, secret, token), "bedrock", region)
    if signer.signed_headers(signer.headers_to_sign(req)) != fields["SignedHeaders"]:
        return "signed headers differ"
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != fields["Signature"]:
        return "signature mismatch"
    return None


def make_handler(v):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            # The ECS/EKS container credentials endpoint.
            if self.path != "/creds" or self.headers.get("authorization") != CONTAINER_AUTH:
                self.send_response(403)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            with v.lock:
                v.credential_fetches += 1
            out = json.dumps({"AccessKeyId": CONTAINER[0], "SecretAccessKey": CONTAINER[1], "Token": CONTAINER[2],
                              "Expiration": "2999-01-01T00:00:00Z"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_POST(self):
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n)
            headers = {k.lower(): val for k, val in self.headers.items()}
            why = check_signature(v, "POST", self.path, headers, body)
            if why is not None:
                with v.lock:
                    v.refused.append(why)
                out = json.dumps({"message": f"The request signature we calculated does not match the signature you provided ({why})."}).encode()
                self.send_response(403)
                self.send_header("content-type", "application/json")
                self.send_header("x-amzn-errortype", "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                return
            with v.lock:
                v.valid += 1
            fwd = urllib.request.Request(v.mock_url + self.path, data=body, method="POST",
                                         headers={"content-type": "application/json", "authorization": headers["authorization"], "x-amz-date": headers["x-amz-date"]})
            try:
                r = urllib.request.urlopen(fwd, timeout=30)
                status, rh, out = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, rh, out = e.code, e.headers, e.read()
            self.send_response(status)
            for k in ("content-type", "x-amzn-errortype", "x-amzn-bedrock-input-token-count"):
                if rh.get(k):
                    self.send_header(k, rh.get(k))
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler


@pytest.fixture(scope="module")
def bedrock():
    mock_port = free_port()
    mock = subprocess.Popen([os.path.join(BIN_DIR, "dragoman-mock"), str(mock_port)], stdout=subprocess.PIPE, text=True)
    assert "listening" in mock.stdout.readline()
    mock_url = f"http://127.0.0.1:{mock_port}"
    v = Verifier(mock_url)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(v))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake = f"http://127.0.0.1:{server.server_address[1]}"
    good = f'aws_access_key_id: {GOOD[0]}, aws_secret_access_key: "{GOOD[1]}", aws_region_name: eu-west-3'
    session = f"aws_access_key_id: {SESSION[0]}, aws_secret_access_key: {SESSION[1]}, aws_session_token: {SESSION[2]}, aws_region_name: us-east-1"
    config = f"""
model_list:
  - model_name: "conv/*"
    litellm_params: {{model: "bedrock/converse/*", api_base: "{fake}", {good}}}
  - model_name: claude-haiku
    litellm_params: {{model: "bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0", api_base: "{fake}", {good}}}
  - model_name: session
    litellm_params: {{model: "bedrock/converse/script/cached", api_base: "{fake}", {session}}}
  - model_name: wrong-secret
    litellm_params: {{model: "bedrock/converse/script/text", api_base: "{fake}", aws_access_key_id: {GOOD[0]}, aws_secret_access_key: not-the-secret, aws_region_name: eu-west-3}}
  - model_name: container
    litellm_params: {{model: "bedrock/converse/script/text", api_base: "{fake}", aws_region_name: us-east-1}}
  - model_name: titan
    litellm_params: {{model: "bedrock/amazon.titan-embed-text-v2:0", api_base: "{fake}", {good}}}
    model_info: {{mode: embedding}}
  - model_name: cohere
    litellm_params: {{model: "bedrock/cohere.embed-english-v3", api_base: "{fake}", {good}}}
    model_info: {{mode: embedding}}
  - model_name: openai-embed
    litellm_params: {{model: "openai/text-embedding-3-small", api_base: "{mock_url}/v1", api_key: sk-up}}
    model_info: {{mode: embedding}}
  - model_name: azure-chat
    litellm_params: {{model: "azure/gpt4o-prod", api_base: "{mock_url}", api_key: az-up, api_version: "2024-10-21"}}
  - model_name: azure-embed
    litellm_params: {{model: "azure/ada-prod", api_base: "{mock_url}", api_key: az-up, api_version: "2024-10-21"}}
    model_info: {{mode: embedding}}
  - model_name: vllm-embed
    litellm_params: {{model: "hosted_vllm/BAAI/bge-m3", api_base: "{mock_url}/v1"}}
    model_info: {{mode: embedding}}
  - model_name: gemini-embed
    litellm_params: {{model: "gemini/gemini-embedding-001", api_base: "{mock_url}", api_key: g-up}}
    model_info: {{mode: embedding}}
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 0
dragoman_settings:
  database_path: {os.path.join(tempfile.mkdtemp(), "bedrock.db")}
"""
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(config)
    cfg.close()
    port = free_port()
    env = {k: val for k, val in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{fake}/creds"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = CONTAINER_AUTH
    gw = subprocess.Popen(
        [os.path.join(BIN_DIR, "dragoman"), "--config", cfg.name, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_http(port)
        yield {"url": f"http://127.0.0.1:{port}", "verifier": v}
    finally:
        gw.terminate()
        mock.terminate()
        server.shutdown()
        gw.wait(10)
        mock.wait(10)
        os.unlink(cfg.name)


def test_anthropic_sdk_reaches_converse_and_invoke_model_with_valid_signatures(bedrock):
    v = bedrock["verifier"]
    before = v.valid
    client = anthropic.Anthropic(base_url=bedrock["url"], api_key=MASTER_KEY)
    for model in ("conv/script/cached", "claude-haiku"):
        msg = client.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}])
        assert msg.content[0].text == "Hello from the mock."
        assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (210, 1024, 12)
        with client.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text == "Hello from the mock."
        assert final.usage.cache_read_input_tokens == 1024
        assert final.usage.output_tokens == 12
    assert v.valid - before == 4
    assert not v.refused


def test_openai_sdk_streams_from_converse_with_temporary_credentials(bedrock):
    v = bedrock["verifier"]
    client = openai.OpenAI(base_url=bedrock["url"] + "/v1", api_key=MASTER_KEY)
    chunks = list(client.chat.completions.create(
        model="session", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say hello"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock."
    usage = chunks[-1].usage
    assert usage.prompt_tokens == 1234 and usage.prompt_tokens_details.cached_tokens == 1024
    assert not v.refused


def test_a_wrong_signature_is_refused_and_reported_as_the_gateways_credentials(bedrock):
    v = bedrock["verifier"]
    client = anthropic.Anthropic(base_url=bedrock["url"], api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="wrong-secret", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code in (401, 403)
    assert "signature" in str(e.value)
    assert v.refused and v.refused[-1] == "signature mismatch"
    v.refused.clear()


@pytest.mark.parametrize("model,tokens", [("openai-embed", 5), ("azure-embed", 5), ("vllm-embed", 5),
                                          ("gemini-embed", None), ("titan", 5), ("cohere", 5)])
def test_openai_sdk_embeddings_reach_every_provider(bedrock, model, tokens):
    client = openai.OpenAI(base_url=bedrock["url"] + "/v1", api_key=MASTER_KEY)
    texts = ["the quick brown fox", "jumps"]
    # The SDK asks for base64 by default and decodes it; float is asked explicitly.
    default = client.embeddings.create(model=model, input=texts)
    floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
    for r in (default, floats):
        assert [d.index for d in r.data] == [0, 1]
        assert all(len(d.embedding) == 8 for d in r.data)
        if tokens is not None:
            assert r.usage.prompt_tokens == tokens
    for a, b in zip(default.data, floats.data):
        # base64 carries the exact f32s; floats are written so they read back to the same f32.
        assert [struct.unpack("<f", struct.pack("<f", x))[0] for x in a.embedding] == \
            [struct.unpack("<f", struct.pack("<f", x))[0] for x in b.embedding]
    raw = client.embeddings.with_raw_response.create(model=model, input="hello", encoding_format="base64")
    body = json.loads(raw.text)
    assert isinstance(body["data"][0]["embedding"], str)
    assert len(base64.b64decode(body["data"][0]["embedding"])) == 8 * 4
    assert bedrock["verifier"].refused == []


def test_container_credentials_are_fetched_once_and_sign_valid_requests(bedrock):
    v = bedrock["verifier"]
    client = openai.OpenAI(base_url=bedrock["url"] + "/v1", api_key=MASTER_KEY)
    for _ in range(3):
        r = client.chat.completions.create(model="container", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Hello from the mock."
    assert v.credential_fetches == 1
    assert not v.refused


def test_a_bedrock_azure_and_embeddings_config_serves_every_model(bedrock):
    """The kind of LiteLLM config that used to stop the gateway: every entry answers."""
    oa = openai.OpenAI(base_url=bedrock["url"] + "/v1", api_key=MASTER_KEY)
    listed = {m.id for m in oa.models.list()}
    chat = ["claude-haiku", "session", "container", "azure-chat"]
    embed = ["titan", "cohere", "openai-embed", "azure-embed", "vllm-embed", "gemini-embed"]
    assert set(chat + embed) <= listed
    for model in chat:
        r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Hello from the mock.", model
    for model in embed:
        assert len(oa.embeddings.create(model=model, input="hi").data[0].embedding) == 8, model
