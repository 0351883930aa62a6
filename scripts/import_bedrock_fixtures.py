#!/usr/bin/env python3
"""Copies the Amazon Bedrock recordings dragoman's tests use from ../shared/fixtures/bedrock.

Why a script of its own: Bedrock streams are binary (the AWS event stream), stored in the
cassettes as YAML !!binary scalars or base64 inside JSON wrappers, so they need unpacking the
SSE importer does not do. Each HTTP body becomes one file:

    test_data/bedrock/requests/<origin>__<name>.json         Converse / ConverseStream bodies
    test_data/bedrock/count/<origin>__<name>.json            CountTokens request bodies
    test_data/bedrock/responses/<origin>__<name>.json        non-streamed 2xx Converse bodies
    test_data/bedrock/streams/<origin>__<name>.eventstream   raw event-stream bytes, unchanged
    test_data/bedrock/errors/<origin>__<name>.json           {"status": N, "error_type": T?, "body": ...}

InvokeModel calls (Anthropic's own dialect, embeddings) are left to other importers. Rows for
test_data/PROVENANCE.md are returned by import_bedrock() so scripts/import_fixtures.py can list
them; run alone, this script rewrites the Bedrock rows of that file in place.

Run: python3 scripts/import_bedrock_fixtures.py [SHARED_FIXTURES_DIR]
"""
import base64
import json
import os
import re
import shutil
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test_data", "bedrock")


def safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def dumps(v):
    return json.dumps(v, indent=2, ensure_ascii=False) + "\n"


def crc_checked(data, src):
    """Walks the frames so a damaged copy is caught here rather than in a confusing test."""
    import zlib

    off = 0
    while off < len(data):
        total = int.from_bytes(data[off:off + 4], "big")
        if zlib.crc32(data[off:off + 8]) != int.from_bytes(data[off + 8:off + 12], "big"):
            raise SystemExit(f"{src}: prelude CRC mismatch at {off}")
        end = off + total
        if zlib.crc32(data[off:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            raise SystemExit(f"{src}: message CRC mismatch at {off}")
        off = end
    return data


def import_bedrock(src_root):
    """Unpacks every Bedrock recording; returns PROVENANCE rows (out path, source, note)."""
    rows = []
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)

    def put(kind, stem, data, src, note, ext="json"):
        d = os.path.join(OUT, kind)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{safe(stem)}.{ext}")
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        rows.append((os.path.relpath(path, ROOT), src, note))

    base = os.path.join(src_root, "bedrock")
    pyd = os.path.join(base, "pydantic-ai")
    for name in sorted(os.listdir(pyd)):
        if not name.endswith(".yaml"):
            continue
        rel = f"bedrock/pydantic-ai/{name}"
        with open(os.path.join(pyd, name)) as f:
            doc = yaml.safe_load(f)
        inters = doc.get("interactions", [])
        for n, it in enumerate(inters, 1):
            stem = f"pydantic-ai__{name[:-5]}" + (f".{n}" if len(inters) > 1 else "")
            req, resp = it.get("request", {}), it.get("response", {})
            uri = req.get("uri", "")
            op = uri.rsplit("/", 1)[-1]
            if op not in ("converse", "converse-stream", "count-tokens"):
                continue
            body = req.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = body.decode()
            rb = json.loads(body) if isinstance(body, str) and body else None
            if rb is not None:
                kind = "count" if op == "count-tokens" else "requests"
                put(kind, stem, dumps(rb), rel, f"interaction {n} {op} request")
            status = (resp.get("status") or {}).get("code", 200)
            if op == "count-tokens" and status < 400:
                continue
            rbody = resp.get("body") or {}
            raw = rbody.get("string") if isinstance(rbody, dict) else None
            if isinstance(raw, (bytes, bytearray)) and status < 400 and op == "converse-stream":
                put("streams", stem, crc_checked(bytes(raw), rel), rel,
                    f"interaction {n} raw event-stream bytes (YAML !!binary)", "eventstream")
                continue
            js = resp.get("parsed_body")
            if js is None and raw:
                js = json.loads(raw)
            if js is None:
                continue
            if status >= 400:
                put("errors", stem, dumps({"status": status, "body": js}), rel, f"interaction {n} error body")
            else:
                put("responses", stem, dumps(js), rel, f"interaction {n} response")

    ver = os.path.join(base, "vercel-ai")
    for name in sorted(os.listdir(ver)):
        rel = f"bedrock/vercel-ai/{name}"
        path = os.path.join(ver, name)
        if name.endswith(".eventstream.base64.txt"):
            data = base64.b64decode(open(path).read().strip())
            put("streams", "vercel-ai__" + name[: -len(".eventstream.base64.txt")],
                crc_checked(data, rel), rel, "base64 line decoded to raw event-stream bytes", "eventstream")
            continue
        doc = json.load(open(path))
        stem = "vercel-ai__" + name[:-5]
        r = doc.get("response", {}) if isinstance(doc.get("response"), dict) else {}
        if "bodyBase64" in r:
            data = base64.b64decode(r["bodyBase64"])
            put("streams", stem, crc_checked(data, rel), rel, "response.bodyBase64 decoded to raw event-stream bytes",
                "eventstream")
        elif int(doc.get("status", 200)) >= 400:
            etype = (doc.get("headers") or {}).get("x-amzn-errortype")
            put("errors", stem, dumps({"status": int(doc["status"]), "error_type": etype, "body": doc["body"]}),
                rel, "error body with its x-amzn-errortype header")
        elif "output" in doc and "stopReason" in doc:
            put("responses", stem, dumps(doc), rel, "response body")
    return rows


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
    rows = import_bedrock(src)
    prov = os.path.join(ROOT, "test_data", "PROVENANCE.md")
    lines = open(prov).read().splitlines(True) if os.path.exists(prov) else []
    kept = [l for l in lines if not l.startswith("| `test_data/bedrock/")]
    kept += [f"| `{o}` | `{s}` | {n} |\n" for o, s, n in rows]
    with open(prov, "w") as f:
        f.writelines(kept)
    print(f"wrote {len(rows)} files to {OUT}")


if __name__ == "__main__":
    main()
