#!/usr/bin/env bash
# Install the Debian packages sscard-terminal needs, only those that are missing.
# Idempotent: a second run installs nothing and takes well under a second.
set -euo pipefail

PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev libzbar0 pcsc-tools socat espeak-ng gcc python3-dev iproute2 postgresql-15 chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "installing Debian packages: ${missing[*]}"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
