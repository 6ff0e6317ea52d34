// Package release holds the tests of what ships to nodes: the cross-built
// release binaries (sizes, static linking, running under qemu-user), the .deb
// (installed and purged with dpkg), deploy/install.sh (in a scratch root) and
// push mode through NAT (Prometheus agent to a remote-write hub, in the lab).
// It has no code of its own: the artefacts are built by `make packages`.
package release
