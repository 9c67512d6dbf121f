#!/bin/sh
# Install what the lab's PostgreSQL backend (Lab(..., db="postgresql")) needs, if it is missing:
# Debian's PostgreSQL server programs (package `postgresql`) and, as root, the unprivileged
# `postgres` user that runs the server (PostgreSQL refuses root; the package creates the user).
# Idempotent and quiet: prints nothing and changes nothing when both are there. Needs root and
# apt-get (Debian/Ubuntu); elsewhere it says what to install and exits 0, so `make test` still runs
# (the PostgreSQL tests then fail with the lab's own message saying why).
#
# The course starts its own private server (miglab/lab/postgres.py: a scratch cluster, a Unix
# socket, no TCP port). So that installing the package does not also make Debian's default
# cluster `main` (a server on TCP port 5432), the install runs with create_main_cluster = false.

have_server() {
  for d in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/*/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && return 0
  done
  return 1
}

if have_server; then
  [ "$(id -u)" != 0 ] && exit 0             # not root: the server runs as this user
  getent passwd "${MIGLAB_PG_OS_USER:-postgres}" >/dev/null 2>&1 && exit 0
  if [ -n "$MIGLAB_PG_OS_USER" ]; then
    echo "install_postgres: MIGLAB_PG_OS_USER=$MIGLAB_PG_OS_USER is not a user on this machine" >&2
    exit 0
  fi
  echo "Creating the system user postgres (runs the lab's PostgreSQL server)..." >&2
  useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /usr/sbin/nologin \
    postgres >/dev/null 2>&1 || echo "install_postgres: useradd postgres failed" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_postgres: PostgreSQL's server (initdb, pg_ctl) is missing; install it as root" \
       "(apt-get install postgresql). SQLite labs do not need it." >&2
  exit 0
fi

echo "Installing Debian's PostgreSQL server (for the lab's PostgreSQL backend)..." >&2
mkdir -p /etc/postgresql-common/createcluster.d
[ -e /etc/postgresql-common/createcluster.d/miglab.conf ] || \
  printf '# miglab: the course starts its own server; no default cluster\ncreate_main_cluster = false\n' \
    > /etc/postgresql-common/createcluster.d/miglab.conf
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy postgresql 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get update -qq >/dev/null 2>&1
fi
apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || {
  echo "install_postgres: apt-get install postgresql failed" >&2; exit 0; }
have_server || echo "install_postgres: apt-get reported success but initdb/pg_ctl are still missing" >&2
exit 0
