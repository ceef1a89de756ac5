#!/usr/bin/env bash
# Builds flotilla_<version>_<arch>.deb (the server and CLI) and flotilla-agent_<version>_<arch>.deb.
#
#   ./hack/package.sh                         release build (static Swift runtime), into dist/
#   ./hack/package.sh --binaries .build/debug --version 0.1.0+test1 --output /tmp/debs --compression none
#
# Options:
#   --binaries DIR     package flotilla and flotilla-agent from DIR instead of building them
#   --version V        the packages' version (default: what the binaries print for --version)
#   --output DIR       where the .deb files go (default: dist)
#   --compression C    xz (default), gzip or none
#
# The binaries are stripped of what only a debugger needs.
# Depends: dpkg-shlibdeps' list (with minimum versions) for the libraries the binaries load; a
# library no package provides (the Swift runtime of a debug build) is named in a warning.
set -euo pipefail
here=$(pwd)
cd "$(dirname "$0")/.."

binaries=""
version=""
output=dist
compression=xz
fail() { echo "package: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binaries) [ $# -ge 2 ] || fail "--binaries needs a directory"; binaries=$2; shift 2 ;;
    --version) [ $# -ge 2 ] || fail "--version needs a value"; version=$2; shift 2 ;;
    --output) [ $# -ge 2 ] || fail "--output needs a directory"; output=$2; shift 2 ;;
    --compression) [ $# -ge 2 ] || fail "--compression needs xz, gzip or none"; compression=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option '$1' (see --help)" ;;
  esac
done
case "$compression" in xz|gzip|none) ;; *) fail "--compression must be xz, gzip or none, not '$compression'" ;; esac
# Paths given relative to where the script was started from.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }
[ -z "$binaries" ] || binaries=$(absolute "$binaries")
output=$(absolute "$output")

if [ -z "$binaries" ]; then
  echo "==> release build of flotilla and flotilla-agent (static Swift runtime)"
  swift build -c release --static-swift-stdlib --product flotilla --scratch-path .build-package
  swift build -c release --static-swift-stdlib --product flotilla-agent --scratch-path .build-package
  binaries=.build-package/release
fi
for binary in flotilla flotilla-agent; do
  [ -x "$binaries/$binary" ] || fail "no executable $binaries/$binary"
done
if [ -z "$version" ]; then
  version=$("$binaries/flotilla" --version)
  agent_version=$("$binaries/flotilla-agent" --version | awk '{ print $NF }')
  [ "$version" = "$agent_version" ] || fail "flotilla is $version but flotilla-agent is $agent_version; pass --version"
fi
if ! dpkg --validate-version "$version" 2>/dev/null || ! [[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*[A-Za-z0-9+~]$ ]]; then
  fail "'$version' is not a Debian version (a digit first, then letters, digits, . + ~ -, not ending in - or .)"
fi
arch=$(dpkg --print-architecture)
# The binaries must be for the architecture the packages say.
case "$arch" in amd64) machine="X86-64" ;; arm64) machine="AArch64" ;; armhf) machine="ARM" ;; *) machine="" ;; esac
for binary in flotilla flotilla-agent; do
  found=$(readelf -h "$binaries/$binary" | awk -F: '$1 ~ /Machine/ { sub(/^ +/, "", $2); print $2 }')
  [ -z "$machine" ] || [[ "$found" == *"$machine"* ]] || fail "$binaries/$binary is built for $found, not $arch"
done
mkdir -p "$output"
stage=""
trap '[ -z "$stage" ] || rm -rf "$stage"' EXIT

# Depends for $1: dpkg-shlibdeps' packages with least versions. Warns of the libraries $1 loads
# that no Debian package provides.
depends_of() {
  local library path owner unowned=() needed
  needed=$(objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }') || fail "objdump could not read $1"
  for library in $needed; do
    path=$(ldconfig -p | awk -v name="$library" '$1 == name { print $NF; exit }')
    owner=""
    if [ -n "$path" ]; then
      # /lib is /usr/lib on a merged-/usr system, and dpkg knows a file by one of the two.
      owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "${path#/usr}" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null || true)
    fi
    [ -n "$owner" ] || unowned+=("$library")
  done
  if [ ${#unowned[@]} -gt 0 ]; then
    echo "package: warning: $(basename "$1") loads libraries no Debian package provides (${unowned[*]}); it runs only where they are" >&2
  fi
  # dpkg-shlibdeps knows the least version of each library package the binary's symbols need.
  local scratch shlibs
  scratch=$(mktemp -d)
  mkdir "$scratch/debian"
  printf 'Source: flotilla\n\nPackage: flotilla\nArchitecture: any\n' > "$scratch/debian/control"
  shlibs=$(cd "$scratch" && dpkg-shlibdeps -O --ignore-missing-info -e "$1" 2>/dev/null) \
    || { rm -rf "$scratch"; fail "dpkg-shlibdeps could not read $1"; }
  rm -rf "$scratch"
  shlibs=${shlibs#shlibs:Depends=}
  [ -n "$shlibs" ] || fail "no library dependencies found for $1"
  echo "$shlibs"
}

# build_package NAME BINARY DESCRIPTION: the tree under a staging root, then dpkg-deb.
build_package() {
  local name=$1 binary=$2 summary=$3
  stage=$(mktemp -d)
  chmod 0755 "$stage"
  install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" "$stage/etc/flotilla" \
    "$stage/usr/share/doc/$name"
  install -m 0755 "$binaries/$binary" "$stage/usr/bin/$binary"
  # Symbols only a debugger needs go (the release server 217 MB → 99 MB, the agent 15 → 9 MB).
  strip --strip-unneeded "$stage/usr/bin/$binary"
  case "$name" in
    flotilla)
      install -m 0644 packaging/deb/flotilla.service "$stage/usr/lib/systemd/system/flotilla.service"
      install -m 0640 packaging/deb/serve.env "$stage/etc/flotilla/serve.env"
      install -m 0640 packaging/deb/server.yaml "$stage/etc/flotilla/server.yaml"
      printf '/etc/flotilla/serve.env\n/etc/flotilla/server.yaml\n' > "$stage/DEBIAN/conffiles"
      install -m 0644 docs/DEPLOYMENT.md docs/SERVER-CONFIG.md "$stage/usr/share/doc/$name/"
      ;;
    flotilla-agent)
      for unit in flotilla-agent.service flotilla-agent-watchdog.service flotilla-agent-watchdog.timer; do
        sed -e 's|/usr/local/bin/flotilla-agent|/usr/bin/flotilla-agent|' -e 's|/usr/local/lib/flotilla/|/usr/lib/flotilla/|' \
          "packaging/$unit" > "$stage/usr/lib/systemd/system/$unit"
        chmod 0644 "$stage/usr/lib/systemd/system/$unit"
      done
      install -d -m 0755 "$stage/usr/lib/flotilla"
      install -m 0755 packaging/flotilla-agent-watchdog "$stage/usr/lib/flotilla/flotilla-agent-watchdog"
      install -m 0600 packaging/agent.yaml "$stage/etc/flotilla/agent.yaml"
      printf '/etc/flotilla/agent.yaml\n' > "$stage/DEBIAN/conffiles"
      ;;
  esac
  for script in preinst postinst prerm postrm; do
    [ ! -e "packaging/deb/$name.$script" ] || install -m 0755 "packaging/deb/$name.$script" "$stage/DEBIAN/$script"
  done
  printf '%s (%s) unstable; urgency=medium\n\n  * Built by hack/package.sh.\n\n -- Flotilla <maintainers@flotilla.dev>  %s\n' \
    "$name" "$version" "$(date -R)" | gzip -9n > "$stage/usr/share/doc/$name/changelog.Debian.gz"
  chmod 0644 "$stage/usr/share/doc/$name/changelog.Debian.gz"
  printf 'Flotilla\nLicense: see the project repository.\n' > "$stage/usr/share/doc/$name/copyright"
  chmod 0644 "$stage/usr/share/doc/$name/copyright"
  local depends
  # useradd, and Debian's helpers for enabling and starting units.
  depends="$(depends_of "$binaries/$binary"), init-system-helpers (>= 1.54~)"
  [ "$name" != flotilla ] || depends="$depends, passwd"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: Flotilla <maintainers@flotilla.dev>"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
    echo "Depends: $depends"
    # https to the forge and artifacts; ssh-keygen and gpg check signed commits.
    case "$name" in
      flotilla) echo "Recommends: ca-certificates, openssh-client, gpg" ;;
      flotilla-agent) echo "Recommends: ca-certificates" ;;
    esac
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: https://github.com/flotilla/flotilla"
    echo "Description: $summary"
    case "$name" in
      flotilla) echo " The fleet server (device registry, enrollment, deployments, operator API) and the"
                echo " flotilla command line. Runs as flotilla.service; settings in /etc/flotilla/serve.env." ;;
      flotilla-agent) echo " Runs on each device: heartbeats, pulls its assignments and runs update flows step by"
                      echo " step. It only dials out. Set server and enrollmentToken in /etc/flotilla/agent.yaml." ;;
    esac
  } > "$stage/DEBIAN/control"
  local file="$output/${name}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$file" >/dev/null
  rm -rf "$stage"
  stage=""
  echo "$file"
}

build_package flotilla flotilla "Flotilla fleet server: GitOps rollouts to IoT and edge devices"
build_package flotilla-agent flotilla-agent "Flotilla device agent"
