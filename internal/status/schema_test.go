package status

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// validate checks v (decoded JSON) against the subset of JSON Schema that
// docs/status.schema.json uses: type, enum, properties, required,
// additionalProperties: false, items and local $ref.
func validate(root, s map[string]any, v any, at string) []string {
	if ref, ok := s["$ref"].(string); ok {
		def := root
		for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			def, _ = def[p].(map[string]any)
		}
		if def == nil {
			return []string{at + ": unknown $ref " + ref}
		}
		return validate(root, def, v, at)
	}
	var errs []string
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	if t, ok := s["type"]; ok {
		types, _ := t.([]any)
		if str, ok := t.(string); ok {
			types = []any{str}
		}
		if !slices.ContainsFunc(types, func(t any) bool { return jsonType(v, t.(string)) }) {
			errs = append(errs, fmt.Sprintf("%s: %v is not of type %v", at, v, t))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := v[r]; !ok {
				errs = append(errs, at+": missing "+r)
			}
		}
		for k, x := range v {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					errs = append(errs, at+": unexpected field "+k)
				}
				continue
			}
			errs = append(errs, validate(root, ps, x, at+"."+k)...)
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range v {
				errs = append(errs, validate(root, items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func jsonType(v any, t string) bool {
	switch v := v.(type) {
	case nil:
		return t == "null"
	case bool:
		return t == "boolean"
	case string:
		return t == "string"
	case float64:
		return t == "number" || t == "integer" && v == math.Trunc(v)
	case []any:
		return t == "array"
	case map[string]any:
		return t == "object"
	}
	return false
}

func asStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../docs/status.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("docs/status.schema.json: %v", err)
	}
	return s
}

// validateJSON checks a /status?format=json body against docs/status.schema.json.
func validateJSON(t *testing.T, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	s := loadSchema(t)
	for _, e := range validate(s, s, v, "$") {
		t.Error(e)
	}
}

// The scenario's report, every figure and event kind in it, follows the
// schema, and so does an empty one.
func TestJSONSchema(t *testing.T) {
	st, now := scenario(t)
	b, _ := json.Marshal(st.Report(now, MaxEvents))
	validateJSON(t, b)
	b, _ = json.Marshal(New("empty").Report(now, MaxEvents))
	validateJSON(t, b)
	for _, want := range []string{`"path":`, `"loss_origin_address":`, `"wifi_roams"`, `"throttle"`, `"lossy"`, `"down"`, `"unprobed"`} {
		if !strings.Contains(string(mustJSON(t, st.Report(now, MaxEvents))), want) {
			t.Errorf("the scenario has no %s: the schema test does not cover it", want)
		}
	}
}

// The validator is strict: an extra field, a missing one, a wrong type or
// an unknown state are each caught.
func TestJSONSchemaCatches(t *testing.T) {
	s := loadSchema(t)
	st, now := scenario(t)
	for name, mutate := range map[string]func(m map[string]any){
		"extra field":   func(m map[string]any) { m["extra"] = 1 },
		"missing field": func(m map[string]any) { delete(m, "node") },
		"wrong type":    func(m map[string]any) { m["slot_seconds"] = "30" },
		"unknown state": func(m map[string]any) { m["targets"].([]any)[0].(map[string]any)["state"] = "fine" },
		"slot field": func(m map[string]any) {
			delete(m["targets"].([]any)[0].(map[string]any)["slots"].([]any)[3].(map[string]any), "lost")
		},
	} {
		var v map[string]any
		json.Unmarshal(mustJSON(t, st.Report(now, MaxEvents)), &v)
		mutate(v)
		if errs := validate(s, s, v, "$"); len(errs) == 0 {
			t.Errorf("%s: passed the schema", name)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
