#!/bin/sh
# install.sh: put smokemon_exporter on a fresh node, in one command.
#
#   sudo ./install.sh [--node-name NAME] [--remote-write URL [--password-file FILE]]
#   sudo ./install.sh --uninstall
#
# It detects the architecture, installs the .deb where dpkg is present (or the
# binary, units and config where it is not), sets the node name, and with
# --remote-write turns on push mode (Prometheus agent, for nodes behind NAT
# that the hub cannot scrape). Running it twice changes nothing.
#
# Options:
#   --node-name NAME       node_name in /etc/smokemon/smokemon.yml (and the
#                          node label push mode adds); default: keep it (the
#                          host name when unset)
#   --remote-write URL     push mode: remote-write to URL (the hub's
#                          /api/v1/write); needs Prometheus (Debian: prometheus)
#   --password-file FILE   push mode with basic auth: the node's own password
#                          for the hub (user name: the node name), copied to
#                          /etc/smokemon/remote-write.password (0640,
#                          root:smokemon); a later run without it keeps it
#   --uninstall            remove everything install.sh installed (a purge)
#   --from DIR             where the packages or binaries are: default the
#                          directory of this script (a release tarball), or
#                          dist/ in a source checkout
#   --method deb|files     force a method (default: deb when dpkg is present)
#   --arch ARCH            amd64, arm64, armv7 or armv6 (default: detected)
#   --root DIR             install into DIR instead of / (files method; no
#                          systemctl, no package manager): for images and tests
set -eu

prog=install.sh
node_name= remote_write= password_file= uninstall= from= method= arch= root=
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

while [ $# -gt 0 ]; do
	case $1 in
	--node-name) node_name=${2?}; shift ;;
	--node-name=*) node_name=${1#*=} ;;
	--remote-write) remote_write=${2?}; shift ;;
	--remote-write=*) remote_write=${1#*=} ;;
	--password-file) password_file=${2?}; shift ;;
	--password-file=*) password_file=${1#*=} ;;
	--uninstall) uninstall=1 ;;
	--from) from=${2?}; shift ;;
	--from=*) from=${1#*=} ;;
	--method) method=${2?}; shift ;;
	--method=*) method=${1#*=} ;;
	--arch) arch=${2?}; shift ;;
	--arch=*) arch=${1#*=} ;;
	--root) root=${2?}; shift ;;
	--root=*) root=${1#*=} ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done

case $node_name in
*[!A-Za-z0-9._-]*) die "--node-name $node_name: use letters, digits, '.', '_' and '-' only" ;;
esac
case $remote_write in
"" | http://?* | https://?*) ;;
*) die "--remote-write $remote_write: not an http(s) URL" ;;
esac
case $remote_write in *[\"\'\ \|\\]*) die "--remote-write: quotes, spaces, '|' and '\\' are not allowed in the URL" ;; esac
if [ -n "$password_file" ]; then
	[ -n "$remote_write" ] || die "--password-file: only with --remote-write (push mode)"
	[ -r "$password_file" ] && [ -s "$password_file" ] || die "--password-file $password_file: not a readable, non-empty file"
fi
if [ -n "$root" ]; then
	[ -d "$root" ] || die "--root $root: no such directory"
	root=$(cd "$root" && pwd)
	[ "$root" != / ] || root=
fi
[ "$(id -u)" = 0 ] || [ -n "$root" ] || die "run as root (sudo $0 ...)"

# Where the pieces are: a release tarball has everything beside this script; a
# source checkout has them in deploy/, prometheus/ and dist/.
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/agent.yml" ]; then
	agent_template=$here/agent.yml
else
	agent_template=$here/../prometheus/agent.yml
fi
if [ -z "$from" ]; then
	if [ -f "$here/smokemon_exporter" ]; then from=$here; else from=$here/../dist; fi
fi

# The architecture of the binaries this node runs. A 64-bit kernel may run a
# 32-bit userland (Raspberry Pi OS armhf on a Pi 4): the userland decides.
detect_arch() {
	m=$(uname -m)
	case $m in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64)
		if [ "$(getconf LONG_BIT 2>/dev/null || echo 64)" = 32 ]; then echo armv7; else echo arm64; fi ;;
	armv8* | armv7*) echo armv7 ;;
	armv6*) echo armv6 ;;
	*) die "unsupported machine $m (releases: amd64, arm64, armv7, armv6)" ;;
	esac
}
[ -n "$arch" ] || arch=$(detect_arch)
case $arch in amd64 | arm64 | armv7 | armv6) ;; *) die "--arch $arch: one of amd64, arm64, armv7, armv6" ;; esac

if [ -z "$method" ]; then
	if [ -z "$root" ] && command -v dpkg >/dev/null; then method=deb; else method=files; fi
fi
case $method in deb | files) ;; *) die "--method $method: deb or files" ;; esac
[ "$method" = files ] || [ -z "$root" ] || die "--root works with the files method only"

R=$root # prefix for every path we touch
changed= # set when anything on disk changed, to restart the services

systemd_live() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

# put SRC DST MODE: copy when the content or mode differs, so a second run
# leaves files (and their times) untouched.
put() {
	if [ -f "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "$3" ]; then
		return 0
	fi
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.smokemon-new"
	chmod "$3" "$2.smokemon-new"
	mv -f "$2.smokemon-new" "$2"
	say "installed ${2#"$R"}"
	changed=1
}

# link TARGET NAME: a symlink, made only when missing or different.
link() {
	[ "$(readlink "$2" 2>/dev/null || true)" = "$1" ] && return 0
	mkdir -p "$(dirname "$2")"
	ln -sfn "$1" "$2"
	say "enabled ${2#"$R"}"
	changed=1
}

remove() {
	for f; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			rm -rf "$f"
			say "removed ${f#"$R"}"
		fi
	done
}

# The system user, created with the packages' own marker so that an uninstall
# deletes only a user we made.
user_comment="smokemon monitoring (created by the smokemon packages)"
ensure_user() {
	if [ -n "$root" ]; then
		if [ ! -f "$R/etc/passwd" ] || [ ! -f "$R/etc/group" ]; then
			say "no $R/etc/passwd: not creating the smokemon user in --root"
			return 0
		fi
		set -- --root "$R"
	else
		set --
	fi
	if ! grep -q '^smokemon:' "$R/etc/group"; then
		groupadd "$@" --system smokemon
		say "created group smokemon"
	fi
	if ! grep -q '^smokemon:' "$R/etc/passwd"; then
		useradd "$@" --system --gid smokemon --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "$user_comment" smokemon
		say "created user smokemon"
	fi
	if grep -q '^video:' "$R/etc/group" && ! grep '^video:' "$R/etc/group" | cut -d: -f4 | tr , '\n' | grep -qx smokemon; then
		usermod "$@" -a -G video smokemon
	fi
}

remove_user() {
	[ -f "$R/etc/passwd" ] || return 0
	grep '^smokemon:' "$R/etc/passwd" | cut -d: -f5 | grep -qF "$user_comment" || return 0
	if [ -n "$root" ]; then set -- --root "$R"; else set --; fi
	userdel "$@" smokemon
	! grep -q '^smokemon:' "$R/etc/group" || groupdel "$@" smokemon
	say "removed user smokemon"
}

deb_arch() {
	dpkg --print-architecture 2>/dev/null && return 0
	case $arch in amd64) echo amd64 ;; arm64) echo arm64 ;; *) echo armhf ;; esac
}

find_deb() {
	a=$(deb_arch)
	deb=$(ls "$from"/smokemon-exporter_*_"$a".deb 2>/dev/null | sort -V | tail -n1 || true)
	[ -n "$deb" ] || die "no smokemon-exporter_*_$a.deb in $from (make packages, or --from DIR)"
	echo "$deb"
}

find_binary() {
	for b in "$from/smokemon_exporter" "$from/linux-$arch/smokemon_exporter"; do
		if [ -x "$b" ]; then
			echo "$b"
			return 0
		fi
	done
	die "no smokemon_exporter for $arch in $from (make release, or --from DIR)"
}

units="smokemon_exporter.service smokemon_agent.service"
wants=$R/etc/systemd/system/multi-user.target.wants

install_files() {
	put "$(find_binary)" "$R/usr/bin/smokemon_exporter" 755
	for u in $units; do
		put "$here/systemd/$u" "$R/usr/lib/systemd/system/$u" 644
	done
	put "$agent_template" "$R/usr/share/smokemon/agent.yml" 644
	# Configuration: installed once, then it is the administrator's.
	[ -f "$R/etc/smokemon/smokemon.yml" ] || put "$here/smokemon.yml" "$R/etc/smokemon/smokemon.yml" 644
	[ -f "$R/etc/default/smokemon_exporter" ] || put "$here/default/smokemon_exporter" "$R/etc/default/smokemon_exporter" 644
	ensure_user
	link /usr/lib/systemd/system/smokemon_exporter.service "$wants/smokemon_exporter.service"
}

install_deb() {
	deb=$(find_deb)
	want=$(dpkg-deb -f "$deb" Version)
	have=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' smokemon-exporter 2>/dev/null || true)
	if [ "$have" != "ii  $want" ]; then
		say "installing $(basename "$deb")"
		dpkg -i "$deb"
		changed=1
	fi
}

# set_node_name FILE: node_name under global:, changed only when different.
set_node_name() {
	f=$1
	if grep -q '^  node_name:' "$f"; then
		cur=$(sed -n 's/^  node_name: *"\{0,1\}\([^"# ]*\)"\{0,1\}.*/\1/p' "$f" | head -n1)
		[ "$cur" != "$node_name" ] || return 0
		sed -i "s/^  node_name:.*/  node_name: \"$node_name\"/" "$f"
	elif grep -q '^global:' "$f"; then
		sed -i "s/^global:.*/&\n  node_name: \"$node_name\"/" "$f"
	else
		sed -i "1i global:\n  node_name: \"$node_name\"" "$f"
	fi
	say "node_name: $node_name"
	changed=1
}

# Push mode: the agent's configuration from the shipped template, with the
# node label and the hub's URL filled in.
setup_agent() {
	name=$node_name
	if [ -z "$name" ]; then
		name=$(sed -n 's/^  node_name: *"\{0,1\}\([^"# ]*\)"\{0,1\}.*/\1/p' "$R/etc/smokemon/smokemon.yml" | head -n1)
	fi
	[ -n "$name" ] || name=$(hostname)
	tmp=$(mktemp)
	sed -e "s|^\(    node: \)[^ ]*\( *# smokemon:node-name\)|\1$name\2|" \
		-e "s|^\(  - url: \)[^ ]*\( *# smokemon:remote-write-url\)|\1$remote_write\2|" \
		"$R/usr/share/smokemon/agent.yml" >"$tmp"
	grep -q "# smokemon:remote-write-url" "$tmp" || die "agent template lacks its markers"
	pw=$R/etc/smokemon/remote-write.password
	if [ -n "$password_file" ]; then
		put "$password_file" "$pw" 640
	fi
	if [ -f "$pw" ]; then
		# Readable by the agent (user smokemon), by no one else.
		gid=$(awk -F: '$1 == "smokemon" {print $3}' "$R/etc/group" 2>/dev/null)
		if [ -n "$gid" ] && [ "$(stat -c %u:%g "$pw")" != "0:$gid" ]; then
			chown "0:$gid" "$pw"
			changed=1
		fi
		sed -i "s|^    # \(basic_auth: {username: \)[^,]*\(, password_file: [^}]*}\)\( *# smokemon:basic-auth\)|    \1$name\2\3|" "$tmp"
		grep -q "^    basic_auth: {username: $name," "$tmp" || die "agent template lacks its basic-auth marker"
	fi
	put "$tmp" "$R/etc/smokemon/agent.yml" 644
	rm -f "$tmp"
	link /usr/lib/systemd/system/smokemon_agent.service "$wants/smokemon_agent.service"
	if [ -z "$root" ] && ! command -v prometheus >/dev/null; then
		command -v apt-get >/dev/null || die "push mode needs Prometheus (2.x or 3.x) as /usr/bin/prometheus"
		say "installing Debian's prometheus for agent mode"
		# Only its binary is wanted: policy-rc.d keeps its own server from starting.
		policy=/usr/sbin/policy-rc.d made=
		if [ ! -e "$policy" ]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus || {
			[ -z "$made" ] || rm -f "$policy"
			die "apt-get install prometheus failed"
		}
		[ -z "$made" ] || rm -f "$policy"
		systemctl disable prometheus.service >/dev/null 2>&1 || true
	fi
}

if [ -n "$uninstall" ]; then
	if systemd_live; then
		systemctl disable --now $units >/dev/null 2>&1 || true
	fi
	if [ "$method" = deb ] && dpkg-query -W smokemon-exporter >/dev/null 2>&1; then
		say "purging smokemon-exporter"
		dpkg -P smokemon-exporter
	fi
	for u in $units; do
		remove "$wants/$u" "$R/usr/lib/systemd/system/$u"
	done
	remove "$R/usr/bin/smokemon_exporter" "$R/usr/share/smokemon" \
		"$R/etc/smokemon/smokemon.yml" "$R/etc/smokemon/agent.yml" "$R/etc/smokemon/remote-write.password" \
		"$R/etc/default/smokemon_exporter" "$R/var/lib/smokemon-agent"
	rmdir "$R/etc/smokemon" "$wants" 2>/dev/null || true
	remove_user
	if [ -n "$root" ]; then
		# An image or scratch root gets back the directories it had: the ones
		# the files method made, and only when empty.
		for d in etc/systemd/system etc/systemd etc/default usr/lib/systemd/system usr/lib/systemd \
			usr/lib usr/bin usr/share var/lib var usr; do
			rmdir "$R/$d" 2>/dev/null || true
		done
	fi
	systemd_live && systemctl daemon-reload
	say "uninstalled"
	exit 0
fi

say "installing smokemon_exporter ($arch, method $method${root:+, root $root})"
if [ "$method" = deb ]; then install_deb; else install_files; fi
[ -z "$node_name" ] || set_node_name "$R/etc/smokemon/smokemon.yml"
[ -z "$remote_write" ] || setup_agent

if systemd_live; then
	systemctl daemon-reload
	systemctl enable smokemon_exporter.service >/dev/null 2>&1
	[ -z "$remote_write" ] || systemctl enable smokemon_agent.service >/dev/null 2>&1
	if [ -n "$changed" ]; then
		systemctl restart smokemon_exporter.service
		[ -z "$remote_write" ] || systemctl restart smokemon_agent.service
	else
		systemctl start smokemon_exporter.service
		[ -z "$remote_write" ] || systemctl start smokemon_agent.service
	fi
fi
if [ -n "$changed" ]; then say "done"; else say "already installed; nothing changed"; fi
