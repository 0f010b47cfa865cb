# Sourced by scripts/demo and scripts/test: use (creating it on first run) the project's own virtual
# environment, ./.venv, and install Signpost into it with the extras given as "$1" (e.g. "test").
# A fresh Debian or Ubuntu refuses `pip install` into the system Python (PEP 668, "externally
# managed"); a virtual environment is the way it asks for, and nothing else on the machine changes.
# SIGNPOST_VENV=DIR uses another one; an already active virtual environment is used as it is.

signpost_venv() {
    local extras="$1"
    if [ -z "${VIRTUAL_ENV:-}" ]; then
        local venv="${SIGNPOST_VENV:-.venv}"
        if [ ! -x "$venv/bin/python" ]; then
            local python="${PYTHON:-python3}"
            if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
                echo "Signpost needs Python 3.11 or newer as $python (set PYTHON=/path/to/python3.11)." >&2
                return 1
            fi
            if ! "$python" -m venv "$venv" 2>/dev/null; then
                # Debian and Ubuntu ship venv's pip bootstrap separately (python3.X-venv).
                rm -rf "$venv"
                local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
                local version
                version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
                $sudo apt-get update -q
                DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "python${version}-venv"
                "$python" -m venv "$venv"
            fi
        fi
        # shellcheck disable=SC1091
        . "$venv/bin/activate"
    fi
    python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
}
