package analyzer

import (
	"os"
	"strings"
	"testing"
)

// The table of kinds in docs/analyzer.md is the table in kinds.go.
func TestKindsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/analyzer.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kindRules {
		if !strings.Contains(string(b), "| "+k.Kind+" | "+k.Rule+" | ") {
			t.Errorf("docs/analyzer.md has no row | %s | %s |", k.Kind, k.Rule)
		}
		if len(k.Queries) == 0 {
			t.Errorf("%s reads no queries: its failure could not hold it", k.Kind)
		}
	}
}
