#!/usr/bin/env bash
# The web console's end-to-end tests drive Debian's headless Chromium (with Playwright, which
# is told to use /usr/bin/chromium: it downloads no browser of its own). Install it if missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "installing Chromium from the Debian packages" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
[ -x /usr/bin/chromium ] || { echo "Chromium is not at /usr/bin/chromium after installing" >&2; exit 1; }
