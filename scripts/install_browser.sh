#!/usr/bin/env bash
# Installs Debian's Chromium for the test of the review page (tests/test_report.py), if missing.
# Idempotent: does nothing when a Chromium is already on PATH. Needs root (apt-get); elsewhere it
# says what to install and leaves it to the user (the test then skips with that reason).
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "[browser] $name found: $(command -v "$name")"
        exit 0
    fi
done
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[browser] no Chromium found and cannot apt-get here; install chromium to run the page test" >&2
    exit 0
fi
echo "[browser] installing chromium with apt-get (about a minute)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "[browser] $(chromium --version 2>/dev/null || echo 'chromium installed')"
