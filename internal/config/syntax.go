package config

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// syntaxError reports a YAML syntax error at the line that is wrong.
//
// yaml.v3 often names the line of the block it was parsing, not the line
// that broke it: a mis-indented target five lines into ping: is reported at
// "ping:" (or the line above it), an unclosed quote on line 1 at line 2.
// The bad line is the first one after which the parser fails the same way
// whatever follows: the shortest prefix of the file, in whole lines, that
// fails with the file's own error. That is monotone — once the bad line is
// in, more lines cannot mend it, and a prefix cut inside a valid multi-line
// value fails differently — so a binary search over line counts finds it in
// log2(lines) parses, none dearer than the whole file's (a parse stops at
// its error).
func syntaxError(name string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if l := firstBadLine(data, err); l > 0 {
		line = l
	}
	if unclosedQuote(msg) {
		msg += " (a quote opened on this line is never closed)"
	} else if line > 1 {
		// A quote left open earlier swallows the lines up to the next quote
		// and the error shows there: the lines before it end inside the
		// quoted string, whose first line is the one to fix.
		head := data[:lineEnd(data, line-1)]
		var node yaml.Node
		if herr := yaml.Unmarshal(head, &node); herr != nil && unclosedQuote(herr.Error()) {
			if q := firstBadLine(head, herr); q > 0 {
				msg = fmt.Sprintf("a quoted string opens here and runs on to line %d, where: %s (is a quote left unclosed?)", line, msg)
				line = q
			}
		}
	}
	switch text := lineText(data, line); {
	case line == 0:
		return fmt.Errorf("%s: %s", name, msg)
	case text == "":
		return fmt.Errorf("%s:%d: %s", name, line, msg)
	default:
		return fmt.Errorf("%s:%d: %s: %q", name, line, msg, text)
	}
}

func unclosedQuote(msg string) bool { return strings.Contains(msg, "found unexpected end of stream") }

// lineEnd is the length of the first n lines of data.
func lineEnd(data []byte, n int) int {
	off := 0
	for ; n > 0; n-- {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return len(data)
		}
		off += i + 1
	}
	return off
}

// firstBadLine is the number of lines in the shortest prefix of data that
// fails to parse with the error full (0 if none does, which cannot happen
// for the whole of data).
func firstBadLine(data []byte, full error) int {
	ends := []int{0} // ends[k]: the length of the first k lines
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data)) // a last line without a newline
	}
	k := sort.Search(len(ends), func(k int) bool {
		var node yaml.Node
		err := yaml.Unmarshal(data[:ends[k]], &node)
		return err != nil && err.Error() == full.Error()
	})
	if k == len(ends) {
		return 0
	}
	return k
}

// lineText is line n of data (1-based), cut to a readable length.
func lineText(data []byte, n int) string {
	if n < 1 {
		return ""
	}
	lines := bytes.SplitN(data, []byte("\n"), n+1)
	if len(lines) < n {
		return ""
	}
	s := strings.TrimRight(string(lines[n-1]), "\r")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
