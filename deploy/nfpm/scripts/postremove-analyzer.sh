#!/bin/sh
# smokemon-analyzer after its files are gone.
# deb: $1 = remove|purge|upgrade|...; rpm: $1 = 0 (erase) | 1+ (upgrade).
#
# User policy: remove keeps the smokemon user (conffiles may still name it);
# purge deletes it, and its group, when no other smokemon package is still
# installed and the user is the one the packages created (an administrator's
# own smokemon user is never deleted). rpm has no purge: an erase keeps the
# user, as Fedora's packaging guidelines ask.
set -e
units="smokemon_analyzer.service"
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
case "$1" in
remove)
	if command -v deb-systemd-helper >/dev/null; then
		for u in $units; do deb-systemd-helper mask $u >/dev/null || true; done
	fi
	;;
purge)
	if command -v deb-systemd-helper >/dev/null; then
		for u in $units; do
			deb-systemd-helper purge $u >/dev/null || true
			deb-systemd-helper unmask $u >/dev/null || true
		done
	fi
	rmdir /etc/smokemon 2>/dev/null || true
	others=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'smokemon-*' 2>/dev/null | awk '$1 == "ii"' || true)
	if [ -z "$others" ] && getent passwd smokemon | cut -d: -f5 | grep -q '(created by the smokemon packages)'; then
		userdel smokemon >/dev/null 2>&1 || true
		if getent group smokemon >/dev/null; then groupdel smokemon >/dev/null 2>&1 || true; fi
	fi
	;;
esac
exit 0
