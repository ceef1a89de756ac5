#!/usr/bin/env bash
# Builds both .deb packages from the binaries in a directory and installs them into a throwaway
# root with dpkg (maintainer scripts run chrootless with DPKG_ROOT), then checks what an operator
# gets: files, owners and modes, conffiles, the system user, enabled units that pass
# `systemd-analyze verify`; then an upgrade that keeps edited settings and an operator's disable;
# then removal and purge.
#
#   ./hack/check-packages.sh [BINARIES_DIR]      (default .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
binaries=${1:-.build/debug}
work=$(mktemp -d /tmp/flotilla-packages.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
failures=0
check() { # check DESCRIPTION COMMAND...: runs COMMAND, counts a failure with its description.
  local description=$1; shift
  if "$@" >/dev/null 2>&1; then echo "  ok   $description"; else echo "  FAIL $description" >&2; failures=$((failures + 1)); fi
}
refuses() { local description=$1; shift; check "$description" bash -c '! "$@"' _ "$@"; }
mode() { stat -c '%a %u:%g' "$root$1"; }
is_mode() { [ "$(mode "$1")" = "$2" ] || { echo "$1 is $(mode "$1"), not $2" >&2; return 1; }; }
dpkg_root() { dpkg --root="$root" --force-script-chrootless "$@"; }
queried() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f="$2" "$1"; }

base=$("$binaries/flotilla" --version)
./hack/package.sh --binaries "$binaries" --version "$base" --output "$work/v1" --compression none 2>/dev/null
./hack/package.sh --binaries "$binaries" --version "$base+upgrade1" --output "$work/v2" --compression none 2>/dev/null

# The throwaway root: dpkg's database (this machine's, so Depends are checked against real
# packages), the account files useradd edits, and systemd's own units for `verify`.
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/etc" "$root/usr/lib/systemd"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
# ...with empty file lists: none of their files is in the throwaway root, and dpkg need not say so.
dpkg-query -W -f '${binary:Package}\n' | sed "s|.*|$root/var/lib/dpkg/info/&.list|" | xargs touch
touch "$root/var/lib/dpkg/available"
cp -a /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/login.defs "$root/etc/"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"

echo "==> install $base"
dpkg_root -i "$work/v1/flotilla_${base}_"*.deb "$work/v1/flotilla-agent_${base}_"*.deb
check "both installed at $base" test "$(queried flotilla '${Status} ${Version}') $(queried flotilla-agent '${Status} ${Version}')" = \
  "install ok installed $base install ok installed $base"
check "flotilla is /usr/bin/flotilla, 0755 root" is_mode /usr/bin/flotilla "755 0:0"
check "flotilla-agent is /usr/bin/flotilla-agent, 0755 root" is_mode /usr/bin/flotilla-agent "755 0:0"
check "the installed flotilla runs and says its version" test "$("$root/usr/bin/flotilla" --version)" = "$base"
check "the installed flotilla-agent runs and says its version" test "$("$root/usr/bin/flotilla-agent" --version)" = "flotilla-agent $base"
check "the units are 0644 root" is_mode /usr/lib/systemd/system/flotilla.service "644 0:0"
check "the agent's unit runs /usr/bin/flotilla-agent" grep -qx 'ExecStart=/usr/bin/flotilla-agent --config /etc/flotilla/agent.yaml' \
  "$root/usr/lib/systemd/system/flotilla-agent.service"
check "a system user flotilla, no login shell, home /var/lib/flotilla-server" \
  awk -F: '$1 == "flotilla" && $3 < 1000 && $6 == "/var/lib/flotilla-server" && $7 == "/usr/sbin/nologin" { found = 1 } END { exit !found }' "$root/etc/passwd"
gid=$(awk -F: '$1 == "flotilla" { print $3 }' "$root/etc/group")
check "serve.env is 0640 root:flotilla (it may hold credentials)" is_mode /etc/flotilla/serve.env "640 0:$gid"
check "server.yaml is 0640 root:flotilla" is_mode /etc/flotilla/server.yaml "640 0:$gid"
check "agent.yaml is 0600 root (it holds the enrollment token)" is_mode /etc/flotilla/agent.yaml "600 0:0"
check "flotilla's conffiles are serve.env and server.yaml" test "$(queried flotilla '${Conffiles}' | awk 'NF { print $1 }' | sort | paste -sd' ')" = \
  "/etc/flotilla/serve.env /etc/flotilla/server.yaml"
check "flotilla-agent's conffile is agent.yaml" test "$(queried flotilla-agent '${Conffiles}' | awk 'NF { print $1 }')" = "/etc/flotilla/agent.yaml"
for unit in flotilla flotilla-agent; do
  check "$unit.service is enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/$unit.service"
  check "$unit.service passes systemd-analyze verify" systemd-analyze verify --root="$root" "/usr/lib/systemd/system/$unit.service"
done
# The verification can fail: a unit whose program is missing is refused.
cp "$root/usr/lib/systemd/system/flotilla.service" "$work/broken.service"
sed -i 's|ExecStart=/usr/bin/flotilla |ExecStart=/usr/bin/flotilla-missing |' "$root/usr/lib/systemd/system/flotilla.service"
refuses "systemd-analyze verify refuses a unit whose program is missing" \
  systemd-analyze verify --root="$root" /usr/lib/systemd/system/flotilla.service
cp "$work/broken.service" "$root/usr/lib/systemd/system/flotilla.service"

echo "==> an operator edits the settings and disables the agent; upgrade to $base+upgrade1"
echo 'FLOTILLA_SERVE_OPTIONS=--listen 0.0.0.0:8080' >> "$root/etc/flotilla/serve.env"
sed -i 's|^server: .*|server: https://fleet.acme.example|' "$root/etc/flotilla/agent.yaml"
edited_env=$(sha256sum < "$root/etc/flotilla/serve.env")
edited_agent=$(sha256sum < "$root/etc/flotilla/agent.yaml")
systemctl --root="$root" disable flotilla-agent.service >/dev/null 2>&1
dpkg_root -i "$work/v2/flotilla_${base}+upgrade1_"*.deb "$work/v2/flotilla-agent_${base}+upgrade1_"*.deb
check "both upgraded" test "$(queried flotilla '${Version}') $(queried flotilla-agent '${Version}')" = "$base+upgrade1 $base+upgrade1"
check "the edited serve.env is kept" test "$(sha256sum < "$root/etc/flotilla/serve.env")" = "$edited_env"
check "the edited agent.yaml is kept" test "$(sha256sum < "$root/etc/flotilla/agent.yaml")" = "$edited_agent"
check "serve.env is still 0640 root:flotilla" is_mode /etc/flotilla/serve.env "640 0:$gid"
check "the flotilla user is not added twice" test "$(grep -c '^flotilla:' "$root/etc/passwd")" = 1
check "the server stays enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/flotilla.service"
refuses "the agent an operator disabled stays disabled" test -e "$root/etc/systemd/system/multi-user.target.wants/flotilla-agent.service"

echo "==> remove, then purge"
mkdir -p "$root/var/lib/flotilla-server" && echo data > "$root/var/lib/flotilla-server/flotilla.sqlite"
dpkg_root --remove flotilla
refuses "removed: no /usr/bin/flotilla" test -e "$root/usr/bin/flotilla"
check "removed: the settings stay until purge" test -e "$root/etc/flotilla/serve.env"
refuses "removed: the unit is no longer enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/flotilla.service"
dpkg_root --purge flotilla flotilla-agent
refuses "purged: the settings are gone" test -e "$root/etc/flotilla/serve.env"
refuses "purged: agent.yaml is gone" test -e "$root/etc/flotilla/agent.yaml"
check "purged: the fleet's data is kept" test -s "$root/var/lib/flotilla-server/flotilla.sqlite"

if [ "$failures" -gt 0 ]; then echo "packages: $failures checks failed" >&2; exit 1; fi
echo "packages: flotilla and flotilla-agent install, upgrade keeping their settings, and remove cleanly"
