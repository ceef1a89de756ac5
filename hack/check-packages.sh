#!/usr/bin/env bash
# Builds both .deb packages from the binaries in a directory and installs them into throwaway
# roots with dpkg (maintainer scripts run chrootless with DPKG_ROOT), then checks what an
# operator gets: files, owners and modes, conffiles, the system user, enabled units that
# `systemd-analyze verify` passes without a word; an upgrade that keeps edited settings (also
# when the package ships new defaults) and an operator's disable; removal, reinstall and purge;
# and a device first set up with install-agent.sh moving to the package.
#
#   ./hack/check-packages.sh [BINARIES_DIR]      (default .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
binaries=$(cd "${1:-.build/debug}" && pwd)
work=$(mktemp -d /tmp/flotilla-packages.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
check() { # check DESCRIPTION COMMAND...: runs COMMAND; on failure, says so with what it printed.
  local description=$1 said; shift
  if said=$("$@" 2>&1); then echo "  ok   $description"
  else echo "  FAIL $description${said:+: $said}" >&2; failures=$((failures + 1)); fi
}
refuses() { local description=$1; shift; check "$description" bash -c '! "$@"' _ "$@"; }
mode() { stat -c '%a %u:%g' "$root$1"; }
is_mode() { [ "$(mode "$1")" = "$2" ] || { echo "$1 is $(mode "$1"), not $2"; return 1; }; }
dpkg_root() { dpkg --root="$root" --force-script-chrootless "$@" < /dev/null; }
queried() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f="$2" "$1"; }
enabled() { test -L "$root/etc/systemd/system/multi-user.target.wants/$1.service"; }
# Verified, and nothing said: systemd-analyze passes a unit with a misspelt setting but warns.
verified() {
  local said
  said=$(systemd-analyze verify --root="$root" "/usr/lib/systemd/system/$1" 2>&1) && [ -z "$said" ] || { echo "$said"; return 1; }
}
# new_root DIR: dpkg's database (this machine's, so Depends are checked against real packages,
# with empty file lists: none of their files is here), the account files useradd edits, and
# systemd's own units for `verify`.
new_root() {
  root=$1
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/etc" "$root/usr/lib/systemd"
  cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
  touch "$root/var/lib/dpkg/available"
  dpkg-query -W -f '${binary:Package}\n' | sed "s|.*|$root/var/lib/dpkg/info/&.list|" | xargs touch
  cp -a /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/login.defs "$root/etc/"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
}

base=$("$binaries/flotilla" --version)
next="$base+upgrade1"
./hack/package.sh --binaries "$binaries" --version "$base" --output "$work/v1" --compression none
# The next version from a copy of the packaging whose agent.yaml has a new default, as a release
# that documents a new setting would ship.
mkdir -p "$work/tree"
cp -a hack packaging docs "$work/tree/"
printf '\n# A setting a later release documents.\n' >> "$work/tree/packaging/agent.yaml"
printf '\n# A project setting a later release documents.\n' >> "$work/tree/packaging/deb/server.yaml"
"$work/tree/hack/package.sh" --binaries "$binaries" --version "$next" --output "$work/v2" --compression none
v1=("$work/v1/flotilla_${base}_"*.deb "$work/v1/flotilla-agent_${base}_"*.deb)
v2=("$work/v2/flotilla_${next}_"*.deb "$work/v2/flotilla-agent_${next}_"*.deb)

echo "==> install $base"
new_root "$work/root"
dpkg_root -i "${v1[@]}"
check "both installed at $base" test "$(queried flotilla '${Status} ${Version}') $(queried flotilla-agent '${Status} ${Version}')" = \
  "install ok installed $base install ok installed $base"
check "the installed flotilla runs and says its version" test "$("$root/usr/bin/flotilla" --version)" = "$base"
check "the installed flotilla-agent runs and says its version" test "$("$root/usr/bin/flotilla-agent" --version)" = "flotilla-agent $base"
check "flotilla is /usr/bin/flotilla, 0755 root" is_mode /usr/bin/flotilla "755 0:0"
check "flotilla-agent is /usr/bin/flotilla-agent, 0755 root" is_mode /usr/bin/flotilla-agent "755 0:0"
check "flotilla.service is 0644 root" is_mode /usr/lib/systemd/system/flotilla.service "644 0:0"
check "flotilla-agent.service is 0644 root" is_mode /usr/lib/systemd/system/flotilla-agent.service "644 0:0"
check "the agent's unit runs /usr/bin/flotilla-agent" grep -qx 'ExecStart=/usr/bin/flotilla-agent --config /etc/flotilla/agent.yaml' \
  "$root/usr/lib/systemd/system/flotilla-agent.service"
check "a system user flotilla, no login shell, home /var/lib/flotilla-server" \
  awk -F: '$1 == "flotilla" && $3 < 1000 && $6 == "/var/lib/flotilla-server" && $7 == "/usr/sbin/nologin" { found = 1 } END { exit !found }' "$root/etc/passwd"
check "the server's unit runs as that user" grep -qx 'User=flotilla' "$root/usr/lib/systemd/system/flotilla.service"
gid=$(awk -F: '$1 == "flotilla" { print $4 }' "$root/etc/passwd")
check "serve.env is 0640 root:flotilla (it may hold credentials)" is_mode /etc/flotilla/serve.env "640 0:$gid"
check "server.yaml is 0640 root:flotilla" is_mode /etc/flotilla/server.yaml "640 0:$gid"
overridden() { local said; said=$(dpkg-statoverride --root "$root" --list "$1") && [ "$said" = "$2 $1" ] || { echo "override: '$said'"; return 1; }; }
check "serve.env's owners and mode are a dpkg-statoverride, so an upgrade unpacks it so" overridden /etc/flotilla/serve.env "root #$gid 640"
check "agent.yaml is 0600 root (it holds the enrollment token)" is_mode /etc/flotilla/agent.yaml "600 0:0"
check "flotilla's conffiles are serve.env and server.yaml" test "$(queried flotilla '${Conffiles}' | awk 'NF { print $1 }' | sort | paste -sd' ')" = \
  "/etc/flotilla/serve.env /etc/flotilla/server.yaml"
check "flotilla-agent's conffile is agent.yaml" test "$(queried flotilla-agent '${Conffiles}' | awk 'NF { print $1 }')" = "/etc/flotilla/agent.yaml"
check "the changelog is where Debian keeps it" test -s "$root/usr/share/doc/flotilla/changelog.Debian.gz"
for unit in flotilla flotilla-agent; do
  check "$unit.service is enabled" enabled "$unit"
  check "$unit.service passes systemd-analyze verify without a warning" verified "$unit.service"
done
check "the agent's watchdog is /usr/lib/flotilla/flotilla-agent-watchdog, 0755 root" is_mode /usr/lib/flotilla/flotilla-agent-watchdog "755 0:0"
check "the agent's unit runs the watchdog before every start" grep -qx \
  'ExecStartPre=/usr/lib/flotilla/flotilla-agent-watchdog start /etc/flotilla/agent.yaml' "$root/usr/lib/systemd/system/flotilla-agent.service"
check "the watchdog's timer is enabled" test -L "$root/etc/systemd/system/timers.target.wants/flotilla-agent-watchdog.timer"
check "flotilla-agent-watchdog.service passes systemd-analyze verify without a warning" verified flotilla-agent-watchdog.service
check "flotilla-agent-watchdog.timer passes systemd-analyze verify without a warning" verified flotilla-agent-watchdog.timer
# The verification can fail: a missing program, and a misspelt setting systemd only warns about.
cp "$root/usr/lib/systemd/system/flotilla.service" "$work/flotilla.service"
sed -i 's|ExecStart=/usr/bin/flotilla |ExecStart=/usr/bin/flotilla-missing |' "$root/usr/lib/systemd/system/flotilla.service"
refuses "verify refuses a unit whose program is missing" verified flotilla.service
sed -e 's|^ProtectSystem=|ProtectSytem=|' "$work/flotilla.service" > "$root/usr/lib/systemd/system/flotilla.service"
refuses "verify refuses a unit with a misspelt setting" verified flotilla.service
cp "$work/flotilla.service" "$root/usr/lib/systemd/system/flotilla.service"

echo "==> an operator edits the settings and disables the agent; upgrade to $next, whose agent.yaml has new defaults"
echo 'FLOTILLA_SERVE_OPTIONS=--listen 0.0.0.0:8080' >> "$root/etc/flotilla/serve.env"
sed -i 's|^server: .*|server: https://fleet.acme.example|' "$root/etc/flotilla/agent.yaml"
edited_env=$(sha256sum < "$root/etc/flotilla/serve.env")
edited_agent=$(sha256sum < "$root/etc/flotilla/agent.yaml")
systemctl --root="$root" disable flotilla-agent.service > /dev/null 2>&1
# ...and keeps server.yaml to root alone, with an override of their own.
dpkg-statoverride --root "$root" --remove /etc/flotilla/server.yaml
dpkg-statoverride --root "$root" --update --add root root 0600 /etc/flotilla/server.yaml
# Unattended, as the agent's install step runs dpkg: no one is there to answer a prompt.
dpkg_root --force-confdef --force-confold -i "${v2[@]}"
check "both upgraded" test "$(queried flotilla '${Status} ${Version}') $(queried flotilla-agent '${Status} ${Version}')" = \
  "install ok installed $next install ok installed $next"
check "the edited serve.env is kept" test "$(sha256sum < "$root/etc/flotilla/serve.env")" = "$edited_env"
check "the edited agent.yaml is kept over the new default" test "$(sha256sum < "$root/etc/flotilla/agent.yaml")" = "$edited_agent"
check "...and the new default is beside it" grep -q 'A setting a later release documents' "$root/etc/flotilla/agent.yaml.dpkg-dist"
check "serve.env is still 0640 root:flotilla" is_mode /etc/flotilla/serve.env "640 0:$gid"
# server.yaml was not edited, so the upgrade replaced it; dpkg gave the new file the override's
# owners and mode as it unpacked it (the archive has it 0640 root:root).
check "the unedited server.yaml is the new release's" grep -q 'A project setting a later release documents' "$root/etc/flotilla/server.yaml"
check "...unpacked with the operator's override: 0600 root" is_mode /etc/flotilla/server.yaml "600 0:0"
check "the flotilla user is not added twice" test "$(grep -c '^flotilla:' "$root/etc/passwd")" = 1
check "the server stays enabled" enabled flotilla
refuses "the agent an operator disabled stays disabled" enabled flotilla-agent

echo "==> remove the server, install it again, then purge both"
mkdir -p "$root/var/lib/flotilla-server" && echo data > "$root/var/lib/flotilla-server/flotilla.sqlite"
dpkg_root --remove flotilla
refuses "removed: no /usr/bin/flotilla" test -e "$root/usr/bin/flotilla"
check "removed: the settings stay until purge" test -e "$root/etc/flotilla/serve.env"
dpkg_root -i "${v2[0]}"
check "installed again: enabled as it was" enabled flotilla
check "installed again: the edited serve.env is there" test "$(sha256sum < "$root/etc/flotilla/serve.env")" = "$edited_env"
dpkg_root --purge flotilla flotilla-agent
refuses "purged: the settings are gone" test -e "$root/etc/flotilla/serve.env"
refuses "purged: agent.yaml is gone" test -e "$root/etc/flotilla/agent.yaml"
refuses "purged: the unit is no longer enabled" enabled flotilla
refuses "purged: no override is left" dpkg-statoverride --root "$root" --list /etc/flotilla/serve.env
check "purged: the fleet's data is kept" test -s "$root/var/lib/flotilla-server/flotilla.sqlite"

echo "==> a device set up with install-agent.sh moves to the package"
new_root "$work/device"
sh packaging/install-agent.sh --root "$root" --binary "$binaries/flotilla-agent" --server https://fleet.acme.example --token fle_example_token > /dev/null
# ...and enabled, as the script does on a live device.
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/flotilla-agent.service "$root/etc/systemd/system/multi-user.target.wants/flotilla-agent.service"
dpkg_root --force-confdef --force-confold -i "${v1[1]}"
refuses "the script's unit no longer outranks the package's" test -e "$root/etc/systemd/system/flotilla-agent.service"
check "...it is kept aside" test -e "$root/etc/systemd/system/flotilla-agent.service.install-agent"
check "the enabled unit is the package's" test "$(readlink "$root/etc/systemd/system/multi-user.target.wants/flotilla-agent.service")" = \
  /usr/lib/systemd/system/flotilla-agent.service
check "the device keeps its settings" grep -qx 'server: https://fleet.acme.example' "$root/etc/flotilla/agent.yaml"

if [ "$failures" -gt 0 ]; then echo "packages: $failures checks failed" >&2; exit 1; fi
echo "packages: flotilla and flotilla-agent install, upgrade keeping their settings, reinstall, purge and replace install-agent.sh"
