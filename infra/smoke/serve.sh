#!/bin/sh
# Entry point of the smoke test's server image: runs the one server named by $1 in the
# foreground (exec, so it gets the container's SIGTERM), listening on every address of
# the container's network, its data under /data.
#   postgres  PostgreSQL 16 on 5432. POSTGRES_USER / POSTGRES_PASSWORD: the role that
#             owns every database, by password from the network; POSTGRES_DATABASES:
#             the databases to create (space-separated).
#   nats      NATS with JetStream on 4222, monitoring (/healthz) on 8222.
#   redis     Redis on 6379, append-only file as in the cluster.
#   caddy     Caddy with the JSON config at /etc/caddy/caddy.json.
set -eu

case "${1:-}" in
postgres)
    bin=/opt/servers/postgres
    pgdata=/data/pgdata
    pwfile=/tmp/postgres-password
    printf '%s\n' "${POSTGRES_PASSWORD:?}" >"${pwfile}"
    "${bin}/initdb" -D "${pgdata}" -U "${POSTGRES_USER:?}" --pwfile="${pwfile}" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    rm -f "${pwfile}"
    # initdb lets in 127.0.0.1 only; the services connect over the network.
    echo "host all all all scram-sha-256" >>"${pgdata}/pg_hba.conf"
    # Single-user mode, before the server listens: no client sees a missing database.
    for database in ${POSTGRES_DATABASES:-}; do
        echo "CREATE DATABASE \"${database}\" OWNER \"${POSTGRES_USER}\";" |
            "${bin}/postgres" --single -D "${pgdata}" postgres >/dev/null
    done
    exec "${bin}/postgres" -D "${pgdata}" -c listen_addresses='*' \
        -c unix_socket_directories=/tmp -c max_connections=200
    ;;
nats)
    exec /opt/servers/bin/nats-server --jetstream --store_dir /data/jetstream \
        --addr 0.0.0.0 --port 4222 --http_port 8222 --server_name ticketing-smoke
    ;;
redis)
    exec /opt/servers/redis/redis-server --bind 0.0.0.0 --port 6379 --dir /data \
        --appendonly yes --appendfsync everysec --save '' --protected-mode no
    ;;
caddy)
    exec /opt/servers/bin/caddy run --config /etc/caddy/caddy.json
    ;;
*)
    echo "usage: ticketing-server postgres|nats|redis|caddy" >&2
    exit 2
    ;;
esac
