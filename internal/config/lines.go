package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// lineIndex maps field paths (ping.targets[2].interval) to the line they are on
// and back, so both decoder and validation errors can say where and what.
type lineIndex struct {
	byPath map[string]int
	byLine map[int]string // the deepest path that starts on a line
}

func indexLines(root *yaml.Node) *lineIndex {
	idx := &lineIndex{byPath: map[string]int{}, byLine: map[int]string{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				idx.byPath[p] = k.Line
				idx.byLine[k.Line] = p
				if v.Line != k.Line {
					idx.byLine[v.Line] = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				idx.byPath[p] = c.Line
				if _, ok := idx.byLine[c.Line]; !ok {
					idx.byLine[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return idx
}

// line finds the line of a path, or of its nearest ancestor that exists in the
// file (a defaulted field has no line of its own; its target does).
func (idx *lineIndex) line(path string) int {
	for p := path; p != ""; {
		if l, ok := idx.byPath[p]; ok {
			return l
		}
		cut := strings.LastIndexAny(p, ".[")
		if cut < 0 {
			break
		}
		p = p[:cut]
	}
	return 0
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// rewriteYAMLError turns the decoder's "line N: field x not found in type
// config.Target" into "FILE:N: ping.targets[0].x: unknown field".
func rewriteYAMLError(file string, idx *lineIndex, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("%s:%s: %s", file, m[1], m[2])
		}
		return fmt.Errorf("%s: %s", file, msg)
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, fmt.Sprintf("%s: %s", file, e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		what := m[2]
		path := ""
		if idx != nil {
			path = idx.byLine[line]
		}
		if f := unknownFieldRE.FindStringSubmatch(what); f != nil {
			what = fmt.Sprintf("unknown field %q (check the spelling and the indentation)", f[1])
		} else {
			what = strings.Replace(what, "cannot unmarshal !!", "cannot read a YAML ", 1)
		}
		if path != "" {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: %s", file, line, path, what))
		} else {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, line, what))
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}
