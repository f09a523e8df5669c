# Sourced by scripts/test and .ci/run: make this machine able to run the whole test suite, or stop at
# once naming what is missing and the one command that installs it. Idempotent and quick when all is
# in place. It provides:
#   - the Debian packages (Python venv, RabbitMQ, PostgreSQL, Chromium for the browser tests, git),
#     installed when running as root or with password-less sudo;
#   - PostgreSQL and RabbitMQ running on 127.0.0.1, PostgreSQL with trust auth for user postgres
#     over TCP and a database "test" (as tests/conftest.py expects);
#   - .venv with the exact versions of requirements.lock and the project installed editable.
# EDI_GATEWAY_TEST_AMQP_URL / EDI_GATEWAY_TEST_POSTGRES_URL point the tests at servers elsewhere;
# when one is set, that service is only waited for, never installed or started here.
set -euo pipefail

_provision_log() { printf '[provision] %s\n' "$*" >&2; }
_provision_stop() {
    printf '[provision] cannot continue: %s\n' "$1" >&2
    [ $# -lt 2 ] || printf '[provision] run this, then try again:\n    %s\n' "$2" >&2
    exit 1
}

# How to run a command as root: "" when we are root, "sudo" when it needs no password, else unset.
if [ "$(id -u)" -eq 0 ]; then
    _AS_ROOT=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    _AS_ROOT="sudo"
else
    _AS_ROOT="-"
fi
_can_root() { [ "$_AS_ROOT" != "-" ]; }
_root() { if [ -z "$_AS_ROOT" ]; then "$@"; else sudo "$@"; fi; }
_as_postgres() { if [ -z "$_AS_ROOT" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

# True when a TCP port accepts connections (bash's /dev/tcp; no extra tools needed).
_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
_wait_port() {  # host port seconds
    local i
    for i in $(seq 1 "$3"); do
        _port_open "$1" "$2" && return 0
        sleep 1
    done
    return 1
}

provision_packages() {
    local missing=()
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
    command -v git >/dev/null || missing+=(git)  # tests/test_fresh_clone.py clones the repository
    if [ -z "${EDI_GATEWAY_TEST_AMQP_URL:-}" ]; then
        [ -x /usr/sbin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
    fi
    if [ -z "${EDI_GATEWAY_TEST_POSTGRES_URL:-}" ]; then
        compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
    fi
    command -v psql >/dev/null || missing+=(postgresql-client)
    # The browser tests drive Debian's Chromium through Playwright (no browser download).
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ ${#missing[@]} -gt 0 ] || return 0
    local command="sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    _can_root || _provision_stop "missing Debian packages: ${missing[*]}" "$command"
    _provision_log "installing: ${missing[*]}"
    _root apt-get update -qq
    _root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

provision_postgres() {
    if [ -n "${EDI_GATEWAY_TEST_POSTGRES_URL:-}" ]; then
        return 0  # elsewhere: tests/conftest.py fails the database tests when it does not answer
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local versions
        versions=$(ls /etc/postgresql 2>/dev/null || true)
        [ -n "$versions" ] || _provision_stop "PostgreSQL is installed but has no cluster" \
            "sudo pg_createcluster --start $(ls /usr/lib/postgresql | tail -n 1) main"
        _can_root || _provision_stop "PostgreSQL is not running on 127.0.0.1:5432" \
            "sudo pg_ctlcluster $(echo "$versions" | tail -n 1) main start"
        _provision_log "starting PostgreSQL"
        for version in $versions; do
            _root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
    fi
    local i
    for i in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || _provision_stop "PostgreSQL did not come up on 127.0.0.1:5432" \
        "sudo pg_ctlcluster $(ls /etc/postgresql | tail -n 1) main start"
    psql -w -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1 && return 0
    # The tests connect as postgres over TCP without a password (trust), as on the development machines.
    _can_root || _provision_stop "PostgreSQL needs trust auth for postgres on 127.0.0.1 and a database test" \
        "sudo sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' /etc/postgresql/*/main/pg_hba.conf && sudo pg_ctlcluster $(ls /etc/postgresql | tail -n 1) main reload && sudo -u postgres createdb test"
    _provision_log "configuring PostgreSQL: trust auth on 127.0.0.1, database test"
    local hba
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        _root sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    done
    for version in $(ls /etc/postgresql); do
        _root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
    done
    sleep 1
    _as_postgres psql -q -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1 \
        || _as_postgres createdb test
    psql -w -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null \
        || _provision_stop "PostgreSQL still refuses postgres@127.0.0.1/test"
}

provision_rabbitmq() {
    if [ -n "${EDI_GATEWAY_TEST_AMQP_URL:-}" ]; then
        return 0  # elsewhere: tests/conftest.py fails the broker tests when it does not answer
    fi
    if ! _port_open 127.0.0.1 5672; then
        _can_root || _provision_stop "RabbitMQ is not running on 127.0.0.1:5672" "sudo rabbitmq-server -detached"
        _provision_log "starting RabbitMQ"
        _root rabbitmq-server -detached || true
    fi
    _wait_port 127.0.0.1 5672 90 || _provision_stop "RabbitMQ did not come up on 127.0.0.1:5672" \
        "sudo rabbitmq-server -detached"
    if _can_root; then
        # The port opens before the broker has booted every plugin; wait for the whole start-up.
        _root rabbitmqctl -q await_startup >/dev/null 2>&1 || _provision_stop "RabbitMQ did not finish starting"
    fi
}

provision_venv() {
    # shellcheck source=scripts/_venv.sh
    source scripts/_venv.sh
}

provision_all() {
    provision_packages
    provision_postgres
    provision_rabbitmq
    provision_venv
    export EDI_GATEWAY_PROVISIONED=1
}
