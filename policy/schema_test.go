package policy

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// matchSchema validates doc against input.schema.json with OPA's own JSON
// Schema validator (json.match_schema).
func matchSchema(t *testing.T, doc ast.Value) (bool, []any) {
	t.Helper()
	schema, err := ast.ParseTerm(string(InputSchema()))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(
		rego.Query("[ok, errs] := json.match_schema(input.doc, input.schema)"),
		rego.ParsedInput(ast.NewObject(ast.Item(ast.StringTerm("doc"), ast.NewTerm(doc)), ast.Item(ast.StringTerm("schema"), schema))),
	).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("json.match_schema: %v %v", rs, err)
	}
	errs, _ := rs[0].Bindings["errs"].([]any)
	return rs[0].Bindings["ok"] == true, errs
}

func TestSchemaValidatesSampleInput(t *testing.T) {
	zero := Input{}
	noOptional := SampleInput()
	noOptional.Job.Project = ""
	noOptional.Job.Model.Params = nil
	noOptional.Job.Privacy.DP = nil
	for name, in := range map[string]Input{"sample": SampleInput(), "egress": SampleEgress(), "zero": zero, "no optional fields": noOptional} {
		t.Run(name, func(t *testing.T) {
			v, err := inputValue(in)
			if err != nil {
				t.Fatal(err)
			}
			if ok, errs := matchSchema(t, v); !ok {
				t.Errorf("the %s input does not match input.schema.json: %v", name, errs)
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	tests := map[string]func(doc map[string]any){
		"missing job":       func(doc map[string]any) { delete(doc, "job") },
		"unknown field":     func(doc map[string]any) { doc["extra"] = 1 },
		"other version":     func(doc map[string]any) { doc["version"] = "v2" },
		"numeric feature":   func(doc map[string]any) { doc["job"].(map[string]any)["features"] = []any{1} },
		"fractional rounds": func(doc map[string]any) { doc["job"].(map[string]any)["rounds"] = 1.5 },
		"column without a class": func(doc map[string]any) {
			delete(doc["site"].(map[string]any)["dataset"].(map[string]any)["columns"].([]any)[0].(map[string]any), "classification")
		},
		"egress without records": func(doc map[string]any) { delete(doc["egress"].(map[string]any), "records") },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			bs, err := json.Marshal(normalize(SampleEgress()))
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(bs, &doc); err != nil {
				t.Fatal(err)
			}
			edit(doc)
			v, err := ast.InterfaceToValue(doc)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := matchSchema(t, v); ok {
				t.Errorf("schema accepts the input with %s", name)
			}
		})
	}
}

// TestSchemaMatchesGoTypes walks the Go types and the schema together: every
// field has a property of its JSON name, every property a field, and a field
// is required exactly when it is not omitempty.
func TestSchemaMatchesGoTypes(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(InputSchema(), &schema); err != nil {
		t.Fatal(err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", schema["$schema"])
	}
	defs := schema["$defs"].(map[string]any)
	var walk func(path string, typ reflect.Type, node map[string]any)
	walk = func(path string, typ reflect.Type, node map[string]any) {
		if ref, ok := node["$ref"].(string); ok {
			node = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ.Kind() {
		case reflect.Struct:
			if node["type"] != "object" || node["additionalProperties"] != false {
				t.Errorf("%s: schema is not a closed object", path)
			}
			props, _ := node["properties"].(map[string]any)
			var required []string
			for _, r := range node["required"].([]any) {
				required = append(required, r.(string))
			}
			var names, wantRequired []string
			for i := range typ.NumField() {
				f := typ.Field(i)
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				names = append(names, name)
				if !strings.Contains(opts, "omitempty") {
					wantRequired = append(wantRequired, name)
				}
				prop, ok := props[name].(map[string]any)
				if !ok {
					t.Errorf("%s.%s: no property in the schema", path, name)
					continue
				}
				walk(path+"."+name, f.Type, prop)
			}
			for name := range props {
				if !slices.Contains(names, name) {
					t.Errorf("%s.%s: in the schema but not in the Go type", path, name)
				}
			}
			sort.Strings(required)
			sort.Strings(wantRequired)
			if !slices.Equal(required, wantRequired) {
				t.Errorf("%s: schema requires %v, Go always emits %v", path, required, wantRequired)
			}
		case reflect.Slice:
			if node["type"] != "array" {
				t.Errorf("%s: schema type %v, want array", path, node["type"])
			}
			walk(path+"[]", typ.Elem(), node["items"].(map[string]any))
		case reflect.Map:
			if node["type"] != "object" {
				t.Errorf("%s: schema type %v, want object", path, node["type"])
			}
		case reflect.String:
			if node["type"] != "string" && node["const"] == nil {
				t.Errorf("%s: schema type %v, want string", path, node["type"])
			}
		case reflect.Bool:
			if node["type"] != "boolean" {
				t.Errorf("%s: schema type %v, want boolean", path, node["type"])
			}
		case reflect.Int, reflect.Int64:
			if node["type"] != "integer" {
				t.Errorf("%s: schema type %v, want integer", path, node["type"])
			}
		case reflect.Float64:
			if node["type"] != "number" {
				t.Errorf("%s: schema type %v, want number", path, node["type"])
			}
		default:
			t.Errorf("%s: unexpected Go kind %s", path, typ.Kind())
		}
	}
	walk("input", reflect.TypeFor[Input](), schema)
}
