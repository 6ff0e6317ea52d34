#!/bin/sh
# smokemon-analyzer: enable smokemon_analyzer.service at boot on a first install (keeping an
# administrator's disable on upgrades), start or restart it where systemd runs.
# deb: $1 = configure [old-version]; rpm: $1 = 1 (install) | 2+ (upgrade).
set -e
unit=smokemon_analyzer.service
first=
case "$1" in
configure) [ -n "$2" ] || first=1 ;;
1) first=1 ;;
esac
if command -v deb-systemd-helper >/dev/null; then
	# Debian's way (what dh_installsystemd generates): was-enabled is true on a
	# first install and remembers a disable across upgrades.
	deb-systemd-helper unmask $unit >/dev/null || true
	if deb-systemd-helper --quiet was-enabled $unit; then
		deb-systemd-helper enable $unit >/dev/null || true
	else
		deb-systemd-helper update-state $unit >/dev/null || true
	fi
elif [ -n "$first" ] && command -v systemctl >/dev/null; then
	systemctl enable $unit >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	if [ -n "$first" ]; then
		systemctl start $unit || true
	else
		systemctl try-restart smokemon_analyzer.service || true
	fi
fi
exit 0
