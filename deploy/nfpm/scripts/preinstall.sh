#!/bin/sh
# Both packages: the system user the services run as. Local files only; no
# network traffic. deb: $1 = install|upgrade; rpm: $1 = 1 (install) | 2+ (upgrade).
set -e
# The comment marks a user we created, so a purge removes only ours.
comment="smokemon monitoring (created by the smokemon packages)"
if ! getent group smokemon >/dev/null; then
	groupadd --system smokemon
fi
if ! getent passwd smokemon >/dev/null; then
	useradd --system --gid smokemon --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin --comment "$comment" smokemon
fi
# A Raspberry Pi's firmware mailbox (/dev/vcio: throttling, under-voltage)
# belongs to group video.
if getent group video >/dev/null && ! id -nG smokemon | tr ' ' '\n' | grep -qx video; then
	usermod -a -G video smokemon
fi
exit 0
