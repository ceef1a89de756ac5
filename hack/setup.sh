#!/usr/bin/env bash
# Installs what building and testing Flotilla need. Idempotent, and quiet when all is there.
set -euo pipefail

packages=(git openssh-client openssh-server gnupg pkg-config libgit2-dev libyaml-dev libcurl4-openssl-dev libsqlite3-dev sqlite3 python3-jsonschema python3-yaml postgresql postgresql-client shellcheck prometheus binutils systemd dpkg-dev)
# A script sourcing this one may ask for more (extra_packages=(haproxy)).
packages+=(${extra_packages[@]+"${extra_packages[@]}"})

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages with a server (PostgreSQL) must not start one: tests start their own, on a free port,
  # and stop it. policy-rc.d is Debian's switch for that, removed again once installed.
  remove_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && remove_policy=1
  fi
  installed=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || installed=$?
  [ -z "$remove_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$installed" -eq 0 ] || { echo "setup: apt-get install failed" >&2; exit 1; }
fi

if ! command -v swift >/dev/null 2>&1; then
  for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [ -x "$candidate/swift" ] && export PATH="$candidate:$PATH" && break
  done
fi
command -v swift >/dev/null 2>&1 || { echo "setup: no Swift toolchain found (swift 6 is needed)" >&2; exit 1; }
