#!/usr/bin/env bash
# Best effort: start the local PostgreSQL and MariaDB test servers if they are installed but down.
set -uo pipefail
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if [ -x /usr/sbin/mariadbd ] && command -v mariadb-admin >/dev/null \
   && ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 30); do
    mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1 && break
    sleep 1
  done
fi
exit 0
