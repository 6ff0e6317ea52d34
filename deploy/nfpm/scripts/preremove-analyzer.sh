#!/bin/sh
# smokemon-analyzer: stop the services before the files go (not on upgrade).
# deb: $1 = remove|upgrade|deconfigure; rpm: $1 = 0 (erase) | 1+ (upgrade).
set -e
case "$1" in
remove | deconfigure | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop smokemon_analyzer.service >/dev/null 2>&1 || true
	fi
	if ! command -v deb-systemd-helper >/dev/null && command -v systemctl >/dev/null; then
		systemctl disable smokemon_analyzer.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
