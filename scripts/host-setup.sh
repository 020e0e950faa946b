#!/usr/bin/env bash
# Makes this host able to run the local cluster: a Docker Engine that answers, the compose v2
# plugin, gVisor's runsc registered with the engine as runtime "runsc", and the tools the
# image builds need (debootstrap, Maven, a JDK).
#
# Uses what is already installed; installs only what is missing, from Debian's packages.
# Compose v2 is not packaged for bookworm, and bookworm's runsc (2022) predates the systrap
# platform, so on bookworm both come from trixie through an apt source pinned low, so that
# only the packages named here are taken from it. Safe to run again: it changes nothing on
# a host that already has all of it.
set -euo pipefail

log() { printf '[host-setup] %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Docker Engine -----------------------------------------------------------------------
if ! have dockerd; then
  log "installing Docker Engine (docker.io)"
  apt_install docker.io
fi
if ! have debootstrap; then apt_install debootstrap; fi
if ! have mvn || ! have java; then apt_install maven openjdk-17-jdk-headless; fi
if ! have kcat; then apt_install kcat; fi  # the README's non-Python tenant client
# qjsrun (sandbox/qjsrun.c) is linked statically against libquickjs by images/build.sh
if ! have gcc || [ ! -f /usr/lib/x86_64-linux-gnu/libc.a ]; then apt_install gcc libc6-dev; fi
# the dashboard's browser tests drive Debian's chromium (Playwright, no browser download)
if ! have chromium; then apt_install chromium; fi

if ! docker info >/dev/null 2>&1; then
  # A dockerd killed with its session leaves its pid file behind; a stale one stops the
  # next start, so remove it when no such process runs.
  for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
      $SUDO rm -f "$pidfile"
    fi
  done
  log "starting dockerd"
  $SUDO sh -c 'nohup dockerd >/var/log/metricloom-dockerd.log 2>&1 &'
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/metricloom-dockerd.log"; exit 1; }
fi

# --- Debian trixie, pinned low (bookworm only) --------------------------------------------
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
newer_suite=$codename  # the suite to name with apt-get -t for packages bookworm lacks
use_newer_suite() {  # not in a subshell: it resets apt_updated
  if [ "$codename" = "bookworm" ]; then
    if [ ! -f /etc/apt/sources.list.d/metricloom-trixie.sources ]; then
      log "adding a low-priority trixie apt source (docker-compose v2, runsc)"
      local src=/etc/apt/sources.list.d/debian.sources mirror
      mirror=$(awk '/^URIs:/ {print $2; exit}' "$src" 2>/dev/null || true)
      mirror=${mirror:-http://deb.debian.org/debian}
      $SUDO tee /etc/apt/sources.list.d/metricloom-trixie.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
      $SUDO tee /etc/apt/preferences.d/metricloom-trixie >/dev/null <<PREF
Package: *
Pin: release n=trixie
Pin-Priority: 100
PREF
      apt_updated=0
    fi
    newer_suite=trixie
  fi
}

# --- Compose v2 --------------------------------------------------------------------------
compose_ok() { docker compose version >/dev/null 2>&1; }
if ! compose_ok; then
  suite=$codename
  if ! apt-cache policy docker-compose 2>/dev/null | grep -q 'Candidate: 2\.'; then
    use_newer_suite
    suite=$newer_suite
  fi
  apt_install -t "$suite" docker-compose
  # The plugin lives where the packaged CLI looks; a CLI installed elsewhere looks in /usr/local.
  for plugin in /usr/libexec/docker/cli-plugins/docker-compose /usr/lib/docker/cli-plugins/docker-compose; do
    if [ -x "$plugin" ] && ! compose_ok; then
      $SUDO mkdir -p /usr/local/lib/docker/cli-plugins
      $SUDO ln -sf "$plugin" /usr/local/lib/docker/cli-plugins/docker-compose
    fi
  done
  if ! compose_ok && have docker-compose; then
    $SUDO mkdir -p /usr/local/lib/docker/cli-plugins
    $SUDO ln -sf "$(command -v docker-compose)" /usr/local/lib/docker/cli-plugins/docker-compose
  fi
  compose_ok || { log "docker compose v2 is not available"; exit 1; }
fi

# --- gVisor (runsc) ----------------------------------------------------------------------
# The sandbox's containers may run under gVisor (METRICLOOM_SANDBOX__RUNTIME=runsc): runsc
# registered as a runtime of this engine, on the systrap platform (no KVM needed). Its own
# --network=none: runsc refuses a `--network none` container otherwise ("cannot run with
# network enabled in root network namespace"). The engine reloads its runtimes on SIGHUP,
# so running containers (the cluster's services) are not touched.
if ! have runsc; then
  log "installing gVisor (runsc)"
  use_newer_suite
  apt_install -t "$newer_suite" runsc
fi
runsc_path=$(command -v runsc)
if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  log "registering runsc with the Docker engine (/etc/docker/daemon.json)"
  $SUDO mkdir -p /etc/docker
  $SUDO python3 - "$runsc_path" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
config = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        config = json.load(f)
config.setdefault("runtimes", {})["runsc"] = {
    "path": sys.argv[1],
    "runtimeArgs": ["--platform=systrap", "--network=none"],
}
tmp = path + ".metricloom"
with open(tmp, "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
PY
  dockerd_pid=$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd || true)
  [ -n "$dockerd_pid" ] || { log "no dockerd pid to reload"; exit 1; }
  $SUDO kill -HUP "$dockerd_pid"
  for _ in $(seq 50); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && break
    sleep 0.2
  done
  docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' \
    || { log "the engine did not register runsc; see /etc/docker/daemon.json"; exit 1; }
fi

# --- QuickJS for the sandbox image (TypeScript transformers) ------------------------------
# images/build.sh fetches trixie's quickjs and libc6 with apt-get download: the source must
# be there (on bookworm) even where compose and runsc were already installed.
use_newer_suite
if ! apt-cache show quickjs >/dev/null 2>&1; then $SUDO apt-get update -qq; apt_updated=1; fi

log "docker $(docker version --format '{{.Server.Version}}'), $(docker compose version --short), $(runsc --version | head -1)"
