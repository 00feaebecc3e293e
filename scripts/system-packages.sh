#!/usr/bin/env bash
# Install, from Debian's archive, what this machine lacks among the arguments.
# Each argument is PACKAGE=CHECK: the package is installed only when the shell command CHECK
# fails (so a Node.js installed another way, with its own npm, is left alone).
# Changes nothing when every check passes; needs root only when something is missing.
set -euo pipefail
missing=()
for spec in "$@"; do
  pkg=${spec%%=*} check=${spec#*=}
  bash -c "$check" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${missing[*]}. Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 3
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
