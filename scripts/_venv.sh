# Sourced by scripts/demo and scripts/test. `ensure_venv EXTRA` makes .venv with
# `python3 -m venv` if it is missing, installs the project into it with that extra (again only
# when pyproject.toml changed), and sets $PY to the venv's python.

ensure_venv() {
    local extra="$1" root stamp
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if ! command -v python3 >/dev/null 2>&1; then
        echo "error: gate_mw needs python3 (3.11 or newer) on the PATH" >&2
        return 1
    fi
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: gate_mw needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)" >&2
        return 1
    fi
    if [ ! -x "$root/.venv/bin/python" ]; then
        echo "==> creating .venv"
        rm -rf "$root/.venv"
        if ! python3 -m venv "$root/.venv"; then
            rm -rf "$root/.venv"
            _install_venv_module && python3 -m venv "$root/.venv" || return 1
        fi
    fi
    PY="$root/.venv/bin/python"
    stamp="$root/.venv/.installed-$extra"
    if [ ! -f "$stamp" ] || ! cmp -s "$root/pyproject.toml" "$stamp"; then
        echo "==> installing gate_mw[$extra] into .venv (takes a minute the first time)"
        "$PY" -m pip install -q --disable-pip-version-check -e "$root[$extra]"
        cp "$root/pyproject.toml" "$stamp"
    fi
}

# as_root CMD...: run CMD as root when we are root or may sudo without a password.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# Debian and Ubuntu ship the venv module as a package of its own.
_install_venv_module() {
    local pkg
    pkg="python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    if command -v apt-get >/dev/null 2>&1 && as_root true; then
        echo "==> python3 -m venv failed; installing $pkg with apt-get"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" && return 0
    fi
    echo "error: python3 -m venv failed; install Python's venv module (e.g. apt-get install $pkg)" >&2
    return 1
}
