#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test, then the end-to-end tests with the
# official Python SDKs against a running gateway. Installs the SDKs into .scratch/venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# End-to-end: real SDKs, real sockets, dragoman and the mock upstream as processes.
cargo build --locked -p dragoman -p dragoman-testkit --bins
VENV=.scratch/venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  anthropic==2.14.0 openai==3.57.0 google-genai==3.6.1 pytest==9.2.0 prometheus-client==0.26.0 botocore==1.44.8 schemathesis==4.32.5 playwright==1.65.2
# The real coding agents (pinned); if npm cannot reach its registry the client tests skip, loudly.
CLIENTS=.scratch/clients
if [ ! -x "$CLIENTS/node_modules/.bin/claude" ] || [ ! -x "$CLIENTS/node_modules/.bin/codex" ] \
   || [ ! -x "$CLIENTS/node_modules/.bin/gemini" ]; then
  mkdir -p "$CLIENTS"
  if ! (cd "$CLIENTS" && npm install --silent --no-audit --no-fund \
        @anthropic-ai/claude-code@2.1.332 @openai/codex@0.169.0 @google/gemini-cli@0.61.0 >/dev/null 2>&1); then
    echo "WARNING: could not install Claude Code / Codex CLI / Gemini CLI from npm: their end-to-end tests will be SKIPPED" >&2
  fi
fi
(cd tests/e2e && "../../$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider)
