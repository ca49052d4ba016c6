//go:build !linux

package stanstore

// ftLockHolder is only implemented on Linux; elsewhere the directory is
// not checked for an FT server's lock.
func ftLockHolder(string) (string, error) { return "", nil }

// writerHolder is only implemented on Linux (it reads /proc); elsewhere
// the operator must make sure no server runs on the directory.
func writerHolder(string) (string, error) { return "", nil }
