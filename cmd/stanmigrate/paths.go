package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/changlob"
)

// writableFile checks, before anything runs, that path can become a file:
// not a directory, in a directory that exists. "" and "-" (stdout) pass.
func writableFile(flag, path string) error {
	if path == "" || path == "-" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return usageError{fmt.Errorf("%s %s is a directory: name a file in it, such as %s", flag, path, filepath.Join(path, "report.xml"))}
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usageError{fmt.Errorf("%s %s: the directory %s does not exist: create it first", flag, path, dir)}
	case err != nil:
		return usageError{fmt.Errorf("%s %s: %v", flag, path, err)}
	case !fi.IsDir():
		return usageError{fmt.Errorf("%s %s: %s is a file, not a directory", flag, path, dir)}
	}
	return nil
}

// stateDirectory checks that a state directory can be used: a directory,
// or a path where one can be made (its parent a directory).
func stateDirectory(path string) error {
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.IsDir() {
			return usageError{fmt.Errorf("--state %s is a file, not a directory: name a directory for the checkpoints (it is created if missing)", path)}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return usageError{fmt.Errorf("--state %s: %v", path, err)}
	}
	parent := filepath.Dir(filepath.Clean(path))
	if pi, err := os.Stat(parent); err == nil && !pi.IsDir() {
		return usageError{fmt.Errorf("--state %s: %s is a file, not a directory", path, parent)}
	}
	return nil
}

// maxParallel bounds --parallel (migrate and verify): a bound on typing
// mistakes, far above any machine's cores.
const maxParallel = 1024

// inRangeDuration refuses a duration flag outside lo..hi, naming the
// flag, what it got and what it takes.
func inRangeDuration(flag string, v, lo, hi time.Duration) error {
	if v < lo || v > hi {
		return usageError{fmt.Errorf("%s %v: use %v to %v", flag, v, lo, hi)}
	}
	return nil
}

// inRange refuses a numeric flag outside lo..hi, naming the flag, what it
// got and what it takes.
func inRange(flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return usageError{fmt.Errorf("%s %d: use %d to %d", flag, v, lo, hi)}
	}
	return nil
}

// validGlobs refuses a channel glob that cannot be read, naming the flag.
func validGlobs(flag string, globs []string) error {
	if err := changlob.Check(globs); err != nil {
		return usageError{fmt.Errorf("%s %w", flag, err)}
	}
	return nil
}
