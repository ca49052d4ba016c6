// Package yamlnode looks up keys in decoded YAML nodes, so files can
// report errors at the line of the object they concern.
package yamlnode

import "gopkg.in/yaml.v3"

// Key returns the key node for key in mapping n, or nil.
func Key(n *yaml.Node, key string) *yaml.Node {
	if i := index(n, key); i >= 0 {
		return n.Content[i]
	}
	return nil
}

// Value returns the value node for key in mapping n, or nil.
func Value(n *yaml.Node, key string) *yaml.Node {
	if i := index(n, key); i >= 0 {
		return n.Content[i+1]
	}
	return nil
}

func index(n *yaml.Node, key string) int {
	if n == nil || n.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return i
		}
	}
	return -1
}
