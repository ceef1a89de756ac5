# shellcheck shell=bash
# Shared by the demos: sourced, with $work set to a scratch directory and pids=() to stop on exit.
# shellcheck disable=SC2154  # $work and $pids belong to the script that sources this one

# Stops every process in $pids and removes $work.
stop_started() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

# Stops what was started when the script ends, however it ends: Ctrl-C and SIGTERM end it at
# once, even while it waits (a trapped signal interrupts `wait`; bash's own handling does not).
stop_on_exit() {
  trap stop_started EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A bare fleet repository made from fleet-repo-template/, a clone in $work/clone, and git daemon
# serving it on a free loopback port; sets $repo to its git:// URL.
start_fleet_repository() {
  git init --quiet --bare "$work/fleet.git"
  git clone --quiet "$work/fleet.git" "$work/clone" 2>/dev/null
  cp -r fleet-repo-template/. "$work/clone/"
  git -C "$work/clone" add --all
  git -C "$work/clone" -c user.name=Operator -c user.email=ops@acme.example commit --quiet -m "Our fleet"
  git -C "$work/clone" push --quiet origin HEAD:main
  local git_port
  git_port=$(free_port)
  git daemon --reuseaddr --base-path="$work" --export-all --enable=receive-pack --listen=127.0.0.1 --port="$git_port" "$work" \
    > "$work/git-daemon.log" 2>&1 &
  pids+=($!)
  repo="git://127.0.0.1:$git_port/fleet.git"
  for _ in $(seq 100); do git ls-remote "$repo" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$repo"
}

# Commits what was changed in the clone as an operator would, and pushes it.
commit_and_push() {
  git -C "$work/clone" -c user.name=Operator -c user.email=ops@acme.example commit --quiet -am "$1"
  git -C "$work/clone" push --quiet origin HEAD:main
}
