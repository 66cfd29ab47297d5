#!/usr/bin/env bash
# Installs the Docker Compose v2 CLI plugin (`docker compose`) so `docker compose config` can
# validate docker-compose.yml on a machine with the docker client but no plugin.
# Debian bookworm ships only compose v1; the v2 plugin comes from Debian trixie's `docker-compose`
# package (one static Go binary, depends only on libc6 >= 2.34). It is fetched with apt against a
# throw-away source list (signatures checked by Debian's keyring) and only the plugin is unpacked, so
# the machine's own apt sources and packages are left as they are.
set -euo pipefail
VERSION=2.26.1-4
DEST=/usr/libexec/docker/cli-plugins/docker-compose
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" download -qq "docker-compose=$VERSION")
dpkg -x "$work"/docker-compose_"$VERSION"_*.deb "$work/x"
install -D -m 0755 "$work/x/usr/libexec/docker/cli-plugins/docker-compose" "$DEST"
docker compose version
