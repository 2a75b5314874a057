# Sourced by bin/run and bin/test (from the project root): the virtualenv in .venv with requirements.txt.

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The first Python >= 3.11 among $PYTHON, python3, python3.13, python3.12, python3.11.
find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Create .venv when it is missing, then install (or update to) requirements.txt.
# pip returns in about a second when everything is already installed.
ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    local python
    python=$(find_python) || { echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.x)." >&2; exit 1; }
    log "Creating .venv with $python ($("$python" --version 2>&1))"
    if ! "$python" -m venv .venv; then
      rm -rf .venv
      # Debian and Ubuntu ship venv separately; install it when we can.
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "Installing python3-venv with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        "$python" -m venv .venv
      else
        echo "Could not create a virtualenv: install your Python's venv module" \
             "(Debian/Ubuntu: sudo apt-get install python3-venv)." >&2
        exit 1
      fi
    fi
  fi
  log "Installing requirements.txt into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
}
