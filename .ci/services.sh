# shellcheck shell=bash
# Services for the etcd and object-store tests: an etcd server and an S3
# server (moto), both listening on 127.0.0.1 only, at free ports.
#
# Source it (`source .ci/services.sh`), do not run it. It
#   - installs Debian's etcd-server, protobuf-compiler (the etcd client's
#     build runs protoc) and libprotobuf-dev (the well-known .proto files,
#     google/protobuf/*.proto, that protoc imports: --no-install-recommends
#     leaves them out of protobuf-compiler), and moto[server] from PyPI, each
#     only when missing;
#   - starts etcd (temporary data directory, log in $STEADFAST_SERVICES_DIR)
#     and moto's S3 server (requests handled one at a time, see below),
#     waits until both answer, and creates the S3 bucket;
#   - exports STEADFAST_ETCD_ENDPOINTS, STEADFAST_ETCD_BIN,
#     STEADFAST_S3_ENDPOINT, STEADFAST_S3_BUCKET, AWS_ACCESS_KEY_ID,
#     AWS_SECRET_ACCESS_KEY and AWS_REGION;
#   - defines stop_services, which stops what it started and removes its
#     temporary directory (safe to call twice, and from an EXIT trap).
#
# Sourcing it again in the same shell while the services still answer
# changes nothing. It returns non-zero (without exiting the shell) when a
# service cannot be installed or started.

_svc_log() { printf '[services] %s\n' "$*" >&2; }

_svc_as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    _svc_log "need root to run: $*"
    return 1
  fi
}

_svc_apt_updated=""
_svc_apt_install() {
  if [ -z "$_svc_apt_updated" ]; then
    _svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    _svc_apt_updated=1
  fi
  _svc_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
}

_svc_install() {
  local missing=()
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || missing+=(etcd-server)
  command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
  [ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
  if [ "${#missing[@]}" -gt 0 ]; then
    _svc_log "installing ${missing[*]}"
    _svc_apt_install "${missing[@]}" || return 1
  fi
  if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
    _svc_log "installing moto[server]"
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' >/dev/null 2>&1 ||
      python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
        'moto[server]' >/dev/null || return 1
  fi
}

# Prints a TCP port on 127.0.0.1 that is free now.
_svc_free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# _svc_wait NAME PID LOG URL [SECONDS]: waits until URL answers with HTTP 2xx,
# at most SECONDS (default 30), failing early if PID exits.
_svc_wait() {
  local name=$1 pid=$2 log=$3 url=$4 limit=${5:-30} waited=0
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      _svc_log "$name exited while starting; last lines of $log:"
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    if [ "$waited" -ge $((limit * 5)) ]; then
      _svc_log "$name did not answer at $url within ${limit}s; last lines of $log:"
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
}

_svc_start_etcd() {
  local client peer
  client=$(_svc_free_port) || return 1
  peer=$(_svc_free_port) || return 1
  while [ "$peer" = "$client" ]; do peer=$(_svc_free_port) || return 1; done
  local data="$STEADFAST_SERVICES_DIR/etcd-data" log="$STEADFAST_SERVICES_DIR/etcd.log"
  "$STEADFAST_ETCD_BIN" \
    --name steadfast-ci \
    --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "steadfast-ci=http://127.0.0.1:$peer" \
    --initial-cluster-state new \
    >"$log" 2>&1 </dev/null &
  _STEADFAST_ETCD_PID=$!
  _svc_wait etcd "$_STEADFAST_ETCD_PID" "$log" "http://127.0.0.1:$client/health" || return 1
  export STEADFAST_ETCD_ENDPOINTS="http://127.0.0.1:$client"
  _svc_log "etcd at $STEADFAST_ETCD_ENDPOINTS (pid $_STEADFAST_ETCD_PID, log $log)"
}

# moto_server handles requests on several threads, and its conditional PUT
# (If-None-Match: *) checks and writes in two steps, so two racing creates
# can both succeed; real S3 makes the check and the write one atomic step.
# This runs moto's own application with each request handled under one
# lock, so that the test server is atomic as S3 is.
_svc_moto_script='
import os, sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()

def one_at_a_time(environ, start_response):
    with lock:
        return list(app(environ, start_response))

run_simple(host, port, one_at_a_time, threaded=True)
'

_svc_start_moto() {
  local port log="$STEADFAST_SERVICES_DIR/moto.log"
  port=$(_svc_free_port) || return 1
  python3 -c "$_svc_moto_script" 127.0.0.1 "$port" >"$log" 2>&1 </dev/null &
  _STEADFAST_MOTO_PID=$!
  _svc_wait moto_server "$_STEADFAST_MOTO_PID" "$log" "http://127.0.0.1:$port/moto-api/" 60 ||
    return 1
  export STEADFAST_S3_ENDPOINT="http://127.0.0.1:$port"
  export STEADFAST_S3_BUCKET="${STEADFAST_S3_BUCKET:-steadfast-test}"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  curl -fsS -o /dev/null --max-time 10 -X PUT "$STEADFAST_S3_ENDPOINT/$STEADFAST_S3_BUCKET" || {
    _svc_log "could not create bucket $STEADFAST_S3_BUCKET at $STEADFAST_S3_ENDPOINT"
    return 1
  }
  _svc_log "S3 (moto) at $STEADFAST_S3_ENDPOINT, bucket $STEADFAST_S3_BUCKET (pid $_STEADFAST_MOTO_PID, log $log)"
}

stop_services() {
  local pid
  for pid in ${_STEADFAST_ETCD_PID:-} ${_STEADFAST_MOTO_PID:-}; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in ${_STEADFAST_ETCD_PID:-} ${_STEADFAST_MOTO_PID:-}; do
    wait "$pid" 2>/dev/null || true
  done
  _STEADFAST_ETCD_PID=""
  _STEADFAST_MOTO_PID=""
  if [ -n "${STEADFAST_SERVICES_DIR:-}" ] && [ -d "$STEADFAST_SERVICES_DIR" ]; then
    rm -rf "$STEADFAST_SERVICES_DIR"
  fi
  unset STEADFAST_SERVICES_DIR STEADFAST_ETCD_ENDPOINTS STEADFAST_S3_ENDPOINT
  return 0
}

_svc_running() {
  [ -n "${_STEADFAST_ETCD_PID:-}" ] && kill -0 "$_STEADFAST_ETCD_PID" 2>/dev/null &&
    [ -n "${_STEADFAST_MOTO_PID:-}" ] && kill -0 "$_STEADFAST_MOTO_PID" 2>/dev/null &&
    curl -fsS -o /dev/null --max-time 2 "${STEADFAST_ETCD_ENDPOINTS:-}/health" 2>/dev/null &&
    curl -fsS -o /dev/null --max-time 2 "${STEADFAST_S3_ENDPOINT:-}/moto-api/" 2>/dev/null
}

_svc_main() {
  if _svc_running; then
    _svc_log "already running: etcd at $STEADFAST_ETCD_ENDPOINTS, S3 at $STEADFAST_S3_ENDPOINT"
    return 0
  fi
  stop_services
  command -v curl >/dev/null 2>&1 || _svc_apt_install curl ca-certificates || return 1
  _svc_install || return 1
  STEADFAST_ETCD_BIN=$(command -v etcd || echo /usr/bin/etcd)
  export STEADFAST_ETCD_BIN
  STEADFAST_SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/steadfast-services.XXXXXX") || return 1
  export STEADFAST_SERVICES_DIR
  _svc_start_etcd || { stop_services; return 1; }
  _svc_start_moto || { stop_services; return 1; }
}

_svc_main
