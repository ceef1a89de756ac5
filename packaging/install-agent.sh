#!/bin/sh
# Installs flotilla-agent as a systemd service.
#
#   sudo ./install-agent.sh --binary ./flotilla-agent --server https://flotilla.example.com --token fle_…
#
# Options:
#   --binary PATH   the agent binary to install (default: flotilla-agent beside this script)
#   --server URL    written into a new /etc/flotilla/agent.yaml
#   --token TOKEN   the enrollment token, written into a new agent.yaml (never printed)
#   --root DIR      install under DIR instead of / (for packaging and tests); does not start it
#   --no-start      install, but do not enable or start the service
#   --allow-plain-http  let --server be plain http:// on another machine (anyone on the way could
#                   give the device commands to run as root: a network that is yours alone)
#
# An existing agent.yaml is kept as it is; a running agent is restarted on the new binary.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary="$here/flotilla-agent"
server=""
token=""
root=""
start=1
allow_plain=0

fail() { echo "install-agent: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || fail "--binary needs a path"; binary=$2; shift 2 ;;
    --server) [ $# -ge 2 ] || fail "--server needs a URL"; server=$2; shift 2 ;;
    --token) [ $# -ge 2 ] || fail "--token needs a value"; token=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || fail "--root needs a directory"; root=$2; start=0; shift 2 ;;
    --no-start) start=0; shift ;;
    --allow-plain-http) allow_plain=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option '$1' (see --help)" ;;
  esac
done

[ -x "$binary" ] || fail "no agent binary at $binary (pass --binary PATH)"
"$binary" --version >/dev/null 2>&1 || fail "$binary does not run on this machine"
case "$server" in ""|http://*|https://*) ;; *) fail "--server must be an http:// or https:// URL" ;; esac
# The agent refuses plain HTTP to another machine before it enrolls: said here, before installing.
case "$server" in
  http://*)
    host=${server#http://}; host=${host%%/*}; host=${host##*@}
    case "$host" in
      localhost|localhost:*|127.*|"[::1]"|"[::1]:"*) ;;
      *) [ "$allow_plain" -eq 1 ] || fail "--server $server is plain HTTP to another machine: anyone on the way could give this device commands to run as root; use https://, or pass --allow-plain-http if the network is yours alone" ;;
    esac ;;
esac
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then fail "run as root (or pass --root DIR)"; fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system"
install -d -m 0700 "$root/etc/flotilla" "$root/var/lib/flotilla"
# Replaced atomically, so a running agent never sees half a binary.
install -m 0755 "$binary" "$root/usr/local/bin/.flotilla-agent.new"
mv -f "$root/usr/local/bin/.flotilla-agent.new" "$root/usr/local/bin/flotilla-agent"
install -d -m 0755 "$root/usr/local/lib/flotilla"
install -m 0755 "$here/flotilla-agent-watchdog" "$root/usr/local/lib/flotilla/flotilla-agent-watchdog"
for unit in flotilla-agent.service flotilla-agent-watchdog.service flotilla-agent-watchdog.timer; do
  install -m 0644 "$here/$unit" "$root/etc/systemd/system/$unit"
done

config="$root/etc/flotilla/agent.yaml"
if [ -e "$config" ]; then
  echo "install-agent: keeping the existing $config"
else
  [ -n "$server" ] || fail "no $config yet: pass --server (and --token) to write one"
  umask 077
  sed -e "s|^server: .*|server: $server|" \
      -e "s|^enrollmentToken: .*|enrollmentToken: ${token:-fle_REPLACE_ME}|" \
      -e "s|^# allowPlainHTTP: false|$( [ "$allow_plain" -eq 1 ] && echo 'allowPlainHTTP: true' || echo '# allowPlainHTTP: false' )|" \
      "$here/agent.yaml" > "$config.new"
  chmod 0600 "$config.new"
  mv "$config.new" "$config"
  echo "install-agent: wrote $config"
fi

if [ "$start" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable flotilla-agent.service flotilla-agent-watchdog.timer >/dev/null
  systemctl start flotilla-agent-watchdog.timer
  systemctl restart flotilla-agent.service
  echo "install-agent: flotilla-agent $("$binary" --version | cut -d' ' -f2) is running (journalctl -u flotilla-agent)"
else
  echo "install-agent: installed under ${root:-/}; start it with: systemctl enable --now flotilla-agent"
fi
