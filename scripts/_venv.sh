# Sourced by scripts/test (through scripts/_provision.sh) and scripts/demo: make sure .venv exists and
# holds exactly the versions of requirements.lock, with the project installed editable on top.
# Re-installs only when pyproject.toml or requirements.lock changed since the last install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.edi_gateway-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    echo "installing the locked dependencies (requirements.lock) and edi_gateway into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps -e .
    touch "$stamp"
fi
