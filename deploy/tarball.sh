#!/bin/sh
# tarball.sh DIST ARCH BINARY...: the release tarball for one architecture,
# DIST/smokemon-VERSION.linux-ARCH.tar.gz: the binaries, install.sh and what it
# installs (units, default config, push-mode template), so `sudo ./install.sh`
# works from the unpacked directory on a node without dpkg.
set -eu
dist=$1 arch=$2
shift 2
cd "$(dirname "$0")/.."
name=smokemon-${VERSION:?}.linux-$arch
stage=$dist/.stage/$name
rm -rf "$dist/.stage"
mkdir -p "$stage/systemd" "$stage/default"
for b; do cp "$dist/linux-$arch/$b" "$stage/"; done
cp deploy/install.sh deploy/smokemon.yml prometheus/agent.yml README.md "$stage/"
cp deploy/systemd/*.service "$stage/systemd/"
cp deploy/default/* "$stage/default/"
# Same bytes for the same inputs: fixed owner, order and times.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
	-C "$dist/.stage" -czf "$dist/$name.tar.gz" "$name"
rm -rf "$dist/.stage"
echo "release: $dist/$name.tar.gz"
