package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Syntax errors name the line to fix, not the block around it.
func TestSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		line       int
		text       string
	}{
		{"bad indentation", "global:\n  interval: 1s\nping:\n  targets:\n    - host: a\n    - host: b\n   - host: c\n    - host: d\n", 7, "   - host: c"},
		{"key indented short", "ping:\n  targets:\n    - host: a\n      name: x\n     labels: {a: b}\n    - host: d\n", 5, "     labels: {a: b}"},
		{"label dedented", "ping:\n  targets:\n    - host: a\n      labels:\n        a: b\n       c: d\n", 6, "       c: d"},
		{"unclosed quote", "ping:\n  targets:\n    - host: a\n    - host: \"b\n    - host: c\n    - host: d\n", 4, "    - host: \"b"},
		{"quote closed by a later one", "ping:\n  targets:\n    - host: \"a\n    - host: b\n    - {host: \"c\", name: c}\n", 3, "    - host: \"a"},
		{"tab", "ping:\n  targets:\n    - host: a\n\t- host: b\n    - host: c\n", 4, "\t- host: b"},
		{"stray colon", "ping:\n  targets:\n    - host: a\n    - host: b: c\n    - host: d\n", 4, "    - host: b: c"},
		{"unclosed flow list", "ping:\n  targets: [{host: a}, {host: b}\nmtr:\n  targets: []\n", 2, "  targets: [{host: a}, {host: b}"},
		{"after a multi-line flow list", "ping:\n  targets: [\n    {host: a},\n    {host: b}]\n  x: 1\n y: 2\n", 6, " y: 2"},
		{"after a block scalar", "ping:\n  targets:\n    - host: |\n        a\n        b\n    - host: c\n   x\n", 7, "   x"},
		{"no final newline", "ping:\n  targets:\n    - host: a\n   - host: b", 4, "   - host: b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "cfg.yml")
			want := fmt.Sprintf("cfg.yml:%d: ", tc.line)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), fmt.Sprintf("%q", tc.text)) {
				t.Errorf("err = %v\nwant %s...: %q", err, want, tc.text)
			}
		})
	}
}

// The shipped examples, each broken at one line in each of four ways: the
// error names that line.
func TestSyntaxErrorLineInRealFiles(t *testing.T) {
	breaks := map[string]func(string) string{
		"indent one less": func(l string) string { return l[1:] },
		"tab":             func(l string) string { return "\t" + strings.TrimLeft(l, " ") },
		"stray colon":     func(l string) string { return l + ": x: y" },
		"unclosed quote":  func(l string) string { return strings.Replace(l, ": ", `: "`, 1) },
	}
	for _, file := range []string{"../../docs/examples/edge-node.yml", "../../docs/examples/mesh.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		if _, err := Parse(data, file); err != nil {
			t.Fatalf("unbroken: %v", err)
		}
		tried := 0
		for i, l := range lines {
			// Indented "key: value" lines that are not the first of their
			// block: every break there is a syntax error at that line.
			if c := strings.Index(l, " #"); c > 0 {
				l = strings.TrimRight(l[:c], " ") // a comment would swallow the stray colon
			}
			trim := strings.TrimLeft(l, " ")
			if indent(l) < 4 || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, "- ") || !strings.Contains(trim, ": ") ||
				i == 0 || indent(lines[i-1]) != indent(l) || strings.HasPrefix(strings.TrimLeft(lines[i-1], " "), "#") {
				continue
			}
			for how, brk := range breaks {
				if how == "unclosed quote" && strings.ContainsAny(trim, `"'{[`) {
					continue // the quote would open inside a flow or a quoted value
				}
				broken := append([]string{}, lines...)
				broken[i] = brk(l)
				_, err := Parse([]byte(strings.Join(broken, "\n")), "x.yml")
				if want := fmt.Sprintf("x.yml:%d: ", i+1); err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("%s line %d (%q), %s: err = %v", file, i+1, l, how, err)
				}
				tried++
			}
		}
		if tried < 15 {
			t.Errorf("%s: only %d broken variants", file, tried)
		}
	}
}

func indent(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
