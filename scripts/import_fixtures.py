#!/usr/bin/env python3
"""Copies the recordings dragoman's tests use from ../shared/fixtures into test_data/.

Why: tests must not depend on a folder outside the repository, and the recordings come in five
container formats (VCR cassettes, chunk lists, raw SSE, nock JSON, client captures). This script
unpacks each into one file per HTTP body, named by dialect and kind:

    test_data/<dialect>/requests/<origin>__<name>.json   request bodies
    test_data/<dialect>/responses/<origin>__<name>.json  non-streamed 2xx bodies
    test_data/<dialect>/streams/<origin>__<name>.sse     streamed 2xx bodies (SSE bytes)
    test_data/<dialect>/errors/<origin>__<name>.json     error bodies ({"status": N, "body": ...})

and writes test_data/PROVENANCE.md. Run: python3 scripts/import_fixtures.py [SHARED_FIXTURES_DIR]
"""
import json
import os
import re
import shutil
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
OUT = os.path.join(ROOT, "test_data")
DIALECTS = {
    "anthropic": "anthropic",
    "openai-chat": "chat",
    "openai-responses": "responses",
    "gemini": "gemini",
    # Gemini on Vertex AI speaks the Gemini dialect; its recordings are named vertex-<origin>.
    "vertex": "gemini",
}

written = []  # (out path, source path, note)


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def put(dialect, kind, stem, data, src, note):
    ext = "sse" if kind == "streams" else "json"
    d = os.path.join(OUT, dialect, kind)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{safe(stem)}.{ext}")
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)
    written.append((os.path.relpath(path, ROOT), src, note))


def dumps(v):
    return json.dumps(v, indent=2, ensure_ascii=False) + "\n"


def frame_chunks(dialect, lines):
    """Rebuilds SSE framing around bare data payloads (the vercel chunk lists drop it)."""
    out = []
    for line in lines:
        if dialect in ("chat", "gemini"):
            out.append(f"data: {line}\n\n")
        else:
            t = json.loads(line).get("type", "message")
            out.append(f"event: {t}\ndata: {line}\n\n")
    if dialect == "chat":
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def split_streams(dialect, lines):
    """A chunk list may hold several consecutive streams; a new start event begins the next."""
    streams, cur, last_id = [], [], None
    for line in lines:
        obj = json.loads(line)
        t = obj.get("type")
        new = False
        if dialect == "anthropic" and t == "message_start" and cur:
            new = True
        elif dialect == "responses" and t == "response.created" and cur:
            new = True
        elif dialect == "gemini":
            rid = obj.get("responseId")
            if rid and last_id and rid != last_id:
                new = True
            if rid:
                last_id = rid
        elif dialect == "chat":
            cid = obj.get("id")
            if cid and last_id and cid != last_id and any(json.loads(l).get("id") == last_id for l in cur):
                new = True
            if cid:
                last_id = cid
        if new:
            streams.append(cur)
            cur = []
        cur.append(line)
    if cur:
        streams.append(cur)
    return streams


def classify_json(dialect, stem, body, src, note, status=200):
    if status >= 400 or (isinstance(body, dict) and "error" in body and dialect != "responses") or (
        isinstance(body, dict) and body.get("type") == "error"
    ):
        put(dialect, "errors", stem, dumps({"status": status, "body": body}), src, note)
    elif dialect == "responses" and isinstance(body, dict) and body.get("error") and not body.get("output"):
        put(dialect, "errors", stem, dumps({"status": status, "body": body}), src, note)
    else:
        put(dialect, "responses", stem, dumps(body), src, note)


def body_of(resp):
    if "parsed_body" in resp:
        return resp["parsed_body"], None
    b = resp.get("body")
    if isinstance(b, dict):
        s = b.get("string")
        if isinstance(s, (bytes, bytearray)):
            s = s.decode()
        if s is None:
            return None, None
        try:
            return json.loads(s), None
        except Exception:
            return None, s
    return None, None


def dialect_of_uri(uri, default):
    """Cassettes of one dialect sometimes hold a call of another (cross-dialect histories)."""
    if ":generateContent" in uri or ":streamGenerateContent" in uri:
        return "gemini"
    if ":rawPredict" in uri or ":streamRawPredict" in uri:
        return "anthropic"
    if "/chat/completions" in uri:
        return "chat"
    if "/responses" in uri:
        return "responses"
    if "/messages" in uri:
        return "anthropic"
    return default


def import_cassette(folder_dialect, origin, path, rel):
    with open(path) as f:
        doc = yaml.safe_load(f)
    base = os.path.splitext(os.path.basename(path))[0]
    inters = doc.get("interactions", [])
    for n, it in enumerate(inters, 1):
        stem = f"{origin}__{base}" + (f".{n}" if len(inters) > 1 else "")
        req = it.get("request", {})
        uri = req.get("uri", "")
        dialect = dialect_of_uri(uri, folder_dialect)
        is_count = "count_tokens" in uri or "input_tokens" in uri or ":countTokens" in uri
        if dialect == "gemini" and ":generateContent" not in uri and ":streamGenerateContent" not in uri:
            continue  # cachedContents, token endpoints and other calls beside generation
        rb = req.get("parsed_body")
        if rb is None and isinstance(req.get("body"), str):
            try:
                rb = json.loads(req["body"])
            except Exception:
                rb = None
        if isinstance(rb, dict) and not is_count:
            put(dialect, "requests", stem, dumps(rb), rel, f"interaction {n} request")
        resp = it.get("response", {})
        status = (resp.get("status") or {}).get("code", 200)
        js, text = body_of(resp)
        if is_count:
            continue
        if text is not None and status < 400:
            put(dialect, "streams", stem, text.encode(), rel, f"interaction {n} streamed response")
        elif js is not None:
            classify_json(dialect, stem, js, rel, f"interaction {n} response", status)


def main():
    # Only the imported dialect folders are rebuilt; hand-made test data (test_data/vertex)
    # stays.
    for d in set(DIALECTS.values()):
        if os.path.isdir(os.path.join(OUT, d)):
            shutil.rmtree(os.path.join(OUT, d))
    for folder, dialect in DIALECTS.items():
        base = os.path.join(SRC, folder)
        for origin_dir in sorted(os.listdir(base)):
            od = os.path.join(base, origin_dir)
            origin = f"vertex-{origin_dir}" if folder == "vertex" else origin_dir
            for name in sorted(os.listdir(od)):
                path = os.path.join(od, name)
                rel = f"{folder}/{origin_dir}/{name}"
                stem = f"{origin}__{name}"
                if name.endswith(".chunks.txt"):
                    lines = [l for l in open(path).read().splitlines() if l.strip()]
                    streams = split_streams(dialect, lines)
                    for i, s in enumerate(streams, 1):
                        suffix = f".s{i}" if len(streams) > 1 else ""
                        put(dialect, "streams", stem[: -len(".chunks.txt")] + suffix,
                            frame_chunks(dialect, s), rel, "SSE framing rebuilt around recorded data payloads")
                elif name.endswith((".sse", ".txt", ".bin")):
                    put(dialect, "streams", os.path.splitext(stem)[0], open(path, "rb").read(), rel, "raw SSE bytes")
                elif name.endswith(".yaml"):
                    import_cassette(dialect, origin, path, rel)
                elif name == "ToolRunner.json":
                    for n, it in enumerate(json.load(open(path)), 1):
                        s = f"{stem[:-5]}.{n}"
                        body = it["body"]
                        if isinstance(body, str):
                            body = json.loads(body)
                        put(dialect, "requests", s, dumps(body), rel, f"recording {n} request")
                        resp = it["response"]
                        if isinstance(resp, str):
                            put(dialect, "streams", s, resp.encode(), rel, f"recording {n} streamed response")
                        else:
                            classify_json(dialect, s, resp, rel, f"recording {n} response", int(it.get("status", 200)))
                elif name.endswith(".json"):
                    classify_json(dialect, stem[:-5], json.load(open(path)), rel, "response body")
    cdir = os.path.join(SRC, "clients")
    for name in sorted(os.listdir(cdir)):
        doc = json.load(open(os.path.join(cdir, name)))
        req = doc["request"]
        dialect = "anthropic" if req["path"].startswith("/v1/messages") else "responses"
        if "count_tokens" in req["path"]:
            continue
        put(dialect, "requests", "client__" + name[:-5], dumps(doc["body"]), f"clients/{name}",
            f"{doc['client']} {doc['client_version']}: {doc.get('scenario', '')}")
    # Bedrock's binary streams have their own unpacker; its rows join this file's table.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from import_bedrock_fixtures import import_bedrock

    written.extend(import_bedrock(SRC))
    # Hand-made sections (the embeddings bodies, whose folder this script does not rebuild)
    # are kept as they are: every `## ` section of the old file.
    prov = os.path.join(OUT, "PROVENANCE.md")
    kept = ""
    if os.path.exists(prov):
        with open(prov) as f:
            old = f.read()
        at = old.find("\n## ")
        if at >= 0:
            kept = old[at:]
    with open(prov, "w") as f:
        f.write("# Provenance of test_data\n\n")
        f.write("Generated by `python3 scripts/import_fixtures.py` from the shared recordings "
                "(`../shared/fixtures`). Origins, upstream repositories, commits and licences of every source "
                "file are listed in `../shared/fixtures/SOURCES.md` (vercel/ai Apache-2.0, anthropic SDKs MIT, "
                "openai-python Apache-2.0, pydantic-ai MIT; client captures recorded for this project). "
                "Bodies are copied byte for byte except where the note says the SSE framing was rebuilt "
                "(the vercel chunk lists keep only data payloads).\n\n")
        f.write("| file | source (under fixtures/) | note |\n|---|---|---|\n")
        for out, src, note in written:
            f.write(f"| `{out}` | `{src}` | {note} |\n")
        f.write(kept)
    print(f"wrote {len(written)} files to {OUT}")


main()
