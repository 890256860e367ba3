#!/usr/bin/env bash
# One entry point for setting up rtcforensics on a fresh Debian/Ubuntu machine and running it.
#
#   ./bootstrap.sh demo   set up, then analyse a bundled sample capture
#   ./bootstrap.sh test   set up (incl. test tools), then run the whole test suite (add -m "not slow" for the quick one)
#   ./bootstrap.sh lint   set up (incl. test tools), then ruff check, ruff format --check and mypy on the package
#   ./bootstrap.sh lab    set up, then start JupyterLab on notebooks/
#   ./bootstrap.sh setup  set up only
#
# Idempotent: a second run only checks. Works as root or as a user with sudo. Without apt or without root/sudo it
# says exactly what to install and stops.
set -euo pipefail
cd "$(dirname "$0")"

MODE="${1:-demo}"
shift || true
VENV="${RTCF_VENV:-.venv}"
SAMPLE="${RTCF_SAMPLE:-sample_captures/fingerprint_rewrite.pcapng}"

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

# --- OS packages -----------------------------------------------------------------------------------------
need_pkgs=()
command -v tshark >/dev/null 2>&1 || need_pkgs+=(tshark)
if [ "$MODE" = test ] || [ "$MODE" = lint ]; then
  # headless Chromium renders the HTML report and JupyterLab in the browser tests
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
  command -v editcap >/dev/null 2>&1 || need_pkgs+=(wireshark-common)
fi
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      PY="$c"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  need_pkgs+=(python3 python3-venv)
elif ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_pkgs+=(python3-venv)
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    die "this machine has no apt-get. Install these yourself, then run again: ${need_pkgs[*]} (Python >= 3.10 with venv; on macOS: brew install wireshark python; with conda: conda env create -f environment.yml)"
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || { command -v sudo >/dev/null 2>&1 && [ -t 0 ]; }; then
      SUDO="sudo"
    else
      die "need root or sudo to install: ${need_pkgs[*]}. Run: sudo apt-get install -y ${need_pkgs[*]}   then run this again."
    fi
  fi
  say "installing OS packages: ${need_pkgs[*]}"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
  if [ -z "$PY" ]; then PY=python3; fi
fi

# --- Python environment ----------------------------------------------------------------------------------
case "$MODE" in
  test|lint) EXTRAS="dev,notebooks,srtp,export,case" ;;
  lab) EXTRAS="notebooks,srtp,export,case" ;;
  *) EXTRAS="srtp,export,case" ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.rtcf-installed-$EXTRAS"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing rtcforensics[$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi

# --- run -------------------------------------------------------------------------------------------------
case "$MODE" in
  setup) say "ready: $VENV/bin/rtcforensics --help" ;;
  demo)
    say "analysing $SAMPLE"
    set +e
    "$VENV/bin/rtcforensics" analyze "$SAMPLE" "$@"
    rc=$?
    set -e
    # exit 1 means "findings at or above --fail-on": the demo did its job
    if [ "$rc" -eq 1 ]; then say "done: findings reported (exit 1 = findings at or above --fail-on)"; exit 0; fi
    exit "$rc"
    ;;
  test)
    set +e
    # --durations: the suite has a 30-minute budget on 2 cores; the slowest tests are listed at the end of each run
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=25 "$@"
    rc=$?
    set -e
    # pytest exits 5 when it collected no test: that is a failure of the suite, say so
    [ "$rc" -eq 5 ] && die "pytest collected no tests"
    exit "$rc"
    ;;
  lint)
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy" rtcforensics
    say "lint: ruff check, ruff format --check and mypy passed"
    ;;
  lab)
    exec "$VENV/bin/jupyter" lab --notebook-dir=notebooks "$@"
    ;;
  *) die "unknown mode '$MODE' (use: demo | test | lint | lab | setup)" ;;
esac
