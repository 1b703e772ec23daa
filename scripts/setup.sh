#!/usr/bin/env bash
# Prepare this machine for the govmail lab and tests; safe to run again (it only does what is missing).
#   - Debian packages: docker.io, debootstrap, python3-venv, make, testssl.sh (the appliance tests'
#     TLS scan, tests/appliance/test_tls_scan.py), chromium (the webmail's browser tests drive it
#     headless through Playwright: tests/appliance/test_webmail_browser.py) and libnss3-tools (its
#     certutil makes the test browser trust the stack's CA, in a profile of its own), p7zip-full
#     (the filter's tests build 7z attachments: tests/appliance/test_filter.py)
#   - a running Docker engine (starts dockerd by hand where no service manager runs it)
#   - .venv with the pinned Python dependencies (pyproject.toml + constraints.txt)
# Quiet when all is well: one line per step; on failure one line naming the log to read.
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_DIR="${PROJECT_DIR}/.lab/logs"
VENV="${PROJECT_DIR}/.venv"
STAMP="${VENV}/.govmail-deps"
DOCKERD_LOG=/var/log/govmail-dockerd.log

say() { echo "govmail: $*"; }
die() { echo "govmail: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "setup must run as root (try: sudo make up)"
mkdir -p "${LOG_DIR}"

# --- Debian packages ---------------------------------------------------------------------
PYTHON="${PYTHON:-$(command -v python3 || true)}"
missing=()
command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v testssl >/dev/null 2>&1 || missing+=(testssl.sh)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
command -v 7z >/dev/null 2>&1 || missing+=(p7zip-full)
if [ -z "${PYTHON}" ]; then
  missing+=(python3 python3-venv)
elif ! "${PYTHON}" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >"${LOG_DIR}/setup-apt.log" 2>&1 \
    || die "apt-get update failed: is the Debian mirror reachable? (see ${LOG_DIR}/setup-apt.log)"
  apt-get install -y --no-install-recommends "${missing[@]}" >>"${LOG_DIR}/setup-apt.log" 2>&1 \
    || die "apt-get install ${missing[*]} failed (see ${LOG_DIR}/setup-apt.log)"
  PYTHON="${PYTHON:-$(command -v python3)}"
else
  say "packages ok (docker.io, debootstrap, python3-venv, make, testssl.sh, chromium, libnss3-tools, p7zip-full)"
fi
"${PYTHON}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "${PYTHON} is Python $("${PYTHON}" -c 'import sys; print(*sys.version_info[:2], sep=".")'); govmail needs 3.11 or newer (Debian 12 or 13)"

# --- Docker engine -----------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  say "docker engine ok"
else
  if pgrep -x dockerd >/dev/null 2>&1; then
    say "waiting for the running dockerd to answer"
  else
    say "starting dockerd (log ${DOCKERD_LOG})"
    nohup dockerd >"${DOCKERD_LOG}" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s: see ${DOCKERD_LOG}"
  say "docker engine ok"
fi

# --- Python environment ------------------------------------------------------------------
cd "${PROJECT_DIR}"
wanted="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -x "${VENV}/bin/python" ] && "${VENV}/bin/python" -c 'import sys' >/dev/null 2>&1 \
   && [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${wanted}" ]; then
  say "python environment ok (.venv)"
  exit 0
fi
if ! [ -x "${VENV}/bin/python" ] || ! "${VENV}/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "${VENV}"
  "${PYTHON}" -m venv "${VENV}" >"${LOG_DIR}/setup-pip.log" 2>&1 \
    || die "cannot create ${VENV} with ${PYTHON} (see ${LOG_DIR}/setup-pip.log)"
fi
say "installing the pinned Python dependencies into .venv (a minute or two)"
if ! "${VENV}/bin/pip" install --quiet --disable-pip-version-check --no-input \
      -c constraints.txt -e '.[dev]' >>"${LOG_DIR}/setup-pip.log" 2>&1; then
  if grep -qiE 'Failed to establish a new connection|Temporary failure in name resolution|ConnectTimeout|Network is unreachable' "${LOG_DIR}/setup-pip.log"; then
    die "cannot reach PyPI to install the Python dependencies (see ${LOG_DIR}/setup-pip.log)"
  fi
  die "pip install -e '.[dev]' failed (see ${LOG_DIR}/setup-pip.log)"
fi
echo "${wanted}" >"${STAMP}"
say "python environment ok (.venv)"
