#!/usr/bin/env bash
# Builds the images the local cluster and the sandbox run, with no container registry:
#   metricloom/rootfs-bookworm  Debian bookworm minbase + python3        (docker import)
#   metricloom/rootfs-jre       Debian bookworm minbase + Java 17 JRE     (docker import)
#   metricloom/rootfs-trixie-pg Debian trixie minbase + PostgreSQL 17 + TimescaleDB (import)
#   metricloom/sandbox          the untrusted-code image (harness, non-root user, QuickJS,
#                               and npm's typescript run under QuickJS to check TypeScript)
#   metricloom/kafka            Apache Kafka (jars from Maven Central), KRaft mode
#   metricloom/timescaledb      PostgreSQL 17 + timescaledb, initialised on first start
#   metricloom/app              the metricloom worker, CLI, demo API and dashboard (its
#                               browser app built on the host first: `make web`)
#
# Each image carries a label with the hash of its inputs; an image whose label matches is
# kept, so a second run costs seconds and a changed harness or Dockerfile is rebuilt.
# Usage: images/build.sh [image ...]   (default: all)
# METRICLOOM_IMAGE_TAG=wt tags the built images (sandbox, app, kafka, timescaledb) :wt instead
# of :latest, so a second checkout can build and test its own without replacing the images
# another one runs (the base roots are shared: their inputs are the same).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DOCKER_BUILDKIT=0   # the classic builder needs no buildx plugin and no registry
log() { printf '[images] %s\n' "$*" >&2; }
TAG=${METRICLOOM_IMAGE_TAG:-latest}

MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
current() { docker image inspect --format '{{ index .Config.Labels "metricloom.inputs" }}' "$1" 2>/dev/null || true; }

rootfs() {  # rootfs NAME SUITE PACKAGES
  local name=$1 suite=$2 pkgs=$3 h dir
  h=$(printf '%s %s v1' "$suite" "$pkgs" | sha256sum | cut -c1-16)
  if [ "$(current "$name")" = "$h" ]; then return; fi
  log "debootstrap $suite ($pkgs) -> $name"
  dir=$(mktemp -d)
  debootstrap --variant=minbase --include="$pkgs" "$suite" "$dir" "$MIRROR" >/tmp/metricloom-debootstrap-"$suite".log 2>&1 \
    || { log "debootstrap failed, see /tmp/metricloom-debootstrap-$suite.log"; rm -rf "$dir"; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import -c "$PATH_ENV" -c "LABEL metricloom.inputs=$h" - "$name" >/dev/null
  rm -rf "$dir"
}

build() {  # build NAME CONTEXT DOCKERFILE [extra hashed files...]
  local name=$1:$TAG ctx=$2 df=$3; shift 3
  local h
  h=$(hash_of "$df" $(find "$ctx" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*/.jars/*' | sort) "$@" \
      <(docker image inspect --format '{{.Id}}' "$(awk '/^FROM/ {print $2; exit}' "$df")"))
  if [ "$(current "$name")" = "$h" ]; then log "$name is current"; return; fi
  log "building $name"
  docker build -q --label "metricloom.inputs=$h" -t "$name" -f "$df" "$ctx" >/dev/null
}

quickjs_runtime() {  # QuickJS for JavaScript/TypeScript transformers, into sandbox/.quickjs (not in git)
  # qjs (type checks and the parse check) is trixie's and needs glibc 2.38; the sandbox root
  # is bookworm (2.36), so qjs runs through trixie's own loader and libc, kept beside it.
  # qjsrun (sandbox/qjsrun.c, which runs the inputs) links trixie's libquickjs statically
  # with this host's gcc: one static binary, nothing to load.
  local dir=sandbox/.quickjs tmp want
  want="quickjs=2025.04.26-1 libquickjs=2025.04.26-1 libc6/trixie qjsrun=$(sha256sum < sandbox/qjsrun.c)"
  if [ "$(cat "$dir/.inputs" 2>/dev/null)" = "$want" ]; then return; fi
  log "fetching quickjs, libquickjs and trixie's libc6 (apt-get download), building qjsrun -> $dir"
  tmp=$(mktemp -d) && chmod 0755 "$tmp"
  (cd "$tmp" && apt-get download -q quickjs=2025.04.26-1 libquickjs=2025.04.26-1 libc6/trixie >/dev/null 2>&1) \
    || { log "apt-get download quickjs libquickjs libc6/trixie failed (is the trixie source set up?)"; exit 1; }
  rm -rf "$dir" && mkdir -p "$dir/lib"
  dpkg-deb -x "$tmp"/quickjs_*.deb "$tmp/q" && dpkg-deb -x "$tmp"/libc6_*.deb "$tmp/c"
  dpkg-deb -x "$tmp"/libquickjs_*.deb "$tmp/l"
  cp "$tmp/q/usr/bin/qjs" "$dir/qjs"
  cp "$tmp"/c/usr/lib/x86_64-linux-gnu/{ld-linux-x86-64.so.2,libc.so.6,libm.so.6} "$dir/lib/"
  gcc -O2 -static -Wall -Wextra -Werror -isystem "$tmp/l/usr/include/quickjs" -o "$dir/qjsrun" \
    sandbox/qjsrun.c "$tmp/l/usr/lib/x86_64-linux-gnu/quickjs/libquickjs.a" -lm -lpthread -ldl \
    || { log "building qjsrun failed (gcc and libc6-dev are installed by scripts/host-setup.sh)"; rm -rf "$tmp"; exit 1; }
  rm -rf "$tmp"
  echo "$want" > "$dir/.inputs"
}

typescript_compiler() {  # the pinned npm typescript (sandbox/tsc/package-lock.json), not in git
  local dir=sandbox/tsc
  if [ -f "$dir/node_modules/typescript/lib/typescript.js" ] \
     && [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then return; fi
  log "installing the TypeScript compiler (npm ci) -> $dir/node_modules"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
}

TARGETS=("$@")
all() { [ ${#TARGETS[@]} -eq 0 ]; }
is() { all || [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

if is sandbox || is app; then
  rootfs metricloom/rootfs-bookworm bookworm python3,python3-venv,ca-certificates
fi
if is sandbox; then
  quickjs_runtime
  typescript_compiler
  build metricloom/sandbox sandbox sandbox/Dockerfile
fi
if is kafka; then
  rootfs metricloom/rootfs-jre bookworm openjdk-17-jre-headless
  jars=images/kafka/.jars
  if [ ! -f "$jars/.complete" ] || [ images/kafka/pom.xml -nt "$jars/.complete" ]; then
    log "fetching the Kafka broker jars from Maven Central"
    rm -rf "$jars"
    (cd images/kafka && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=.jars)
    touch "$jars/.complete"
  fi
  build metricloom/kafka images/kafka images/kafka/Dockerfile
fi
if is timescaledb; then
  rootfs metricloom/rootfs-trixie-pg trixie postgresql-17,postgresql-17-timescaledb
  build metricloom/timescaledb images/timescaledb images/timescaledb/Dockerfile
fi
if is app; then
  [ -f dashboard/web/dist/index.html ] \
    || { log "the dashboard's browser app is not built (make web)"; exit 1; }
  wheels=images/app/.wheels
  req_hash=$(hash_of pyproject.toml)
  if [ "$(cat "$wheels/.inputs" 2>/dev/null)" != "$req_hash" ]; then
    log "building wheels for the app image"
    rm -rf "$wheels" && mkdir -p "$wheels"
    python3 -m pip wheel -q --wheel-dir "$wheels" "$ROOT"
    echo "$req_hash" > "$wheels/.inputs"
  fi
  # The project itself changes often: rebuild its own wheel every time (cheap); it carries
  # the dashboard's built browser app (dashboard/web/dist, pyproject's wheel artifacts).
  rm -f "$wheels"/metricloom-*.whl
  python3 -m pip wheel -q --no-deps --wheel-dir "$wheels" "$ROOT"
  build metricloom/app images/app images/app/Dockerfile
fi
