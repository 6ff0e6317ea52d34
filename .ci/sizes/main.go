// Command sizes holds the tree to the house limits: no non-test file over
// 600 lines, no function over 100 lines, benchmarks (tools/bench,
// *_bench_test.go) aside. What already breaks a limit is named in
// allow.txt with its length today: it may shrink, not grow, and a new
// breach fails at once. Run from the module root: go run ./.ci/sizes.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	maxFileLines = 600
	maxFuncLines = 100
	allowFile    = ".ci/sizes/allow.txt"
)

func main() {
	allowed, err := readAllow(allowFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sizes:", err)
		os.Exit(2)
	}
	over, err := measure(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sizes:", err)
		os.Exit(2)
	}
	failed := false
	for _, key := range slices.Sorted(maps.Keys(over)) {
		n := over[key]
		limit, ok := allowed[key]
		switch {
		case !ok:
			fmt.Printf("%s: %d lines, over the limit (%d for files, %d for functions): split it\n", key, n, maxFileLines, maxFuncLines)
			failed = true
		case n > limit:
			fmt.Printf("%s: %d lines, grew past the %d %s allows: split it\n", key, n, limit, allowFile)
			failed = true
		case n < limit:
			fmt.Printf("%s: %d lines, down from %d: lower it in %s\n", key, n, limit, allowFile)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(allowed)) {
		if _, ok := over[key]; !ok {
			fmt.Printf("%s: within the limits now: remove it from %s\n", key, allowFile)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// measure returns every file and function over its limit, by
// "path" or "path:Func" ("path:(T).Method"), with its length in lines.
func measure(root string) (map[string]int, error) {
	over := map[string]int{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		p = filepath.ToSlash(p)
		if !strings.HasSuffix(p, ".go") || strings.HasPrefix(p, "tools/bench/") || strings.HasSuffix(p, "_bench_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		if n := fset.File(f.Pos()).LineCount(); n > maxFileLines && !strings.HasSuffix(p, "_test.go") {
			over[p] = n
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxFuncLines {
				over[p+":"+funcName(fd)] = n
			}
		}
		return nil
	})
	return over, err
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return "(" + id.Name + ")." + fd.Name.Name
	}
	return fd.Name.Name
}

// readAllow reads lines "key lines"; # starts a comment.
func readAllow(path string) (map[string]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for i, l := range strings.Split(string(b), "\n") {
		text, _, _ := strings.Cut(l, "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.Atoi(fields[len(fields)-1])
		if len(fields) != 2 || err != nil {
			return nil, fmt.Errorf("%s:%d: want \"path[:func] lines\", got %q", path, i+1, l)
		}
		out[fields[0]] = n
	}
	return out, nil
}
