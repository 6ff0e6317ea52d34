// Package artifact builds smokemon_exporter for the benches the way it ships
// (make build, the release tarballs, the packages): static, without cgo,
// trimmed and stripped. A default `go build` links the C library for the
// resolver and maps it into the process, which no user runs.
package artifact

import (
	"context"
	"os"
	"os/exec"
)

// BuildExporter compiles ./cmd/smokemon_exporter of the module in dir ("" is
// the working directory) to out.
func BuildExporter(ctx context.Context, dir, out string) *exec.Cmd {
	return Build(ctx, dir, "./cmd/smokemon_exporter", out)
}

// Build compiles the command pkg of the module in dir the same way.
func Build(ctx context.Context, dir, pkg, out string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}
