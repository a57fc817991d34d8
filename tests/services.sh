#!/usr/bin/env bash
# Make sure Redis and PostgreSQL answer on 127.0.0.1, installing them from Debian's packages and
# starting them when they do not, and Debian's chromium for the browser tests. Idempotent: on a machine
# where all are there it only checks.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    # Tests connect as postgres over TCP without a password, as on the project's machines.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    done
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi

# Debian's Chromium for the dashboard's browser tests: Playwright drives it by path (its own browser
# download is not reachable), and with CI=true those tests fail without it.
[ -x /usr/bin/chromium ] || apt_install chromium
# A CJK font, so the screenshots of the Chinese pages show characters rather than boxes.
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || apt_install fonts-wqy-zenhei

for _ in $(seq 1 60); do
  if port_open 6379 && port_open 5432; then exit 0; fi
  sleep 0.5
done
echo "services.sh: Redis or PostgreSQL did not come up on 127.0.0.1" >&2
exit 1
