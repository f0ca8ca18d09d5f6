#!/usr/bin/env bash
# The publisher tests start private nats-server processes: install the server if missing.
set -euo pipefail
if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "installing nats-server from the Debian packages" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
