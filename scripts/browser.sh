#!/usr/bin/env bash
# Make sure Debian's Chromium (for the Playwright tests) and a Devanagari font are installed.
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
fc-list 2>/dev/null | grep -qi devanagari || packages+=(fonts-noto-core)
if [ ${#packages[@]} -gt 0 ]; then
  echo "browser: installing ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing')"
