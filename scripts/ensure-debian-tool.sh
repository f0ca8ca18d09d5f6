#!/usr/bin/env bash
# Installs Debian packages when the tool they provide is missing, so a fresh machine needs
# nothing by hand: `ensure-debian-tool.sh /usr/bin/chromium chromium chromium-driver`.
#   - the console's browser tests drive Debian's headless Chromium (Playwright is told to use
#     /usr/bin/chromium: it downloads no browser of its own);
#   - the publisher's tests start private nats-server processes.
set -euo pipefail
tool=$1
shift
if [ -x "$tool" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "installing $* from the Debian packages (for $tool)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
[ -x "$tool" ] || { echo "$tool is missing after installing $*" >&2; exit 1; }
