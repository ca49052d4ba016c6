//go:build !unix

package state

// lockFile: without flock, compare-and-set holds within one process only.
func lockFile(string) (func(), error) { return func() {}, nil }
