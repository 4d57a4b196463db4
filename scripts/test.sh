#!/usr/bin/env bash
# The one test command. Installs the peers the tests need when they are
# missing (MariaDB server and client, sysbench, PostgreSQL) if we are root,
# checks formatting and vet, then runs every test. The tests start every
# server they need themselves, on 127.0.0.1 only.
#
# Under CI=true a missing peer is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

have_mariadb() { [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null && command -v mariadb >/dev/null; }
have_sysbench() { command -v sysbench >/dev/null; }
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

missing=()
have_mariadb || missing+=(mariadb-server mariadb-client)
have_sysbench || missing+=(sysbench)
have_postgres || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	elif [ "${CI:-}" = true ]; then
		echo "scripts/test.sh: missing ${missing[*]} and cannot install (not root or no apt-get)" >&2
		exit 1
	else
		log "missing ${missing[*]}: tests that need them will be skipped (run as root to install)"
	fi
fi

log "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi

log "go vet"
go vet ./...

log "go test"
go test -count=1 -timeout 40m "$@" ./...
log "all tests passed"
