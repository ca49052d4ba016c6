package yamlnode

import (
	"testing"

	"gopkg.in/yaml.v3"
)

func TestKeyAndValue(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb:\n  c: x\n"), &root); err != nil {
		t.Fatal(err)
	}
	doc := root.Content[0]
	if k := Key(doc, "b"); k == nil || k.Line != 2 {
		t.Fatalf("Key(b) = %+v, want line 2", k)
	}
	if v := Value(Value(doc, "b"), "c"); v == nil || v.Value != "x" || v.Line != 3 {
		t.Fatalf("Value(b.c) = %+v", v)
	}
	if Value(doc, "missing") != nil || Value(Value(doc, "a"), "x") != nil || Key(nil, "a") != nil {
		t.Fatal("lookups on missing keys or non-mappings must return nil")
	}
}
