package main

import (
	"os"
	"strings"
)

// environment is the process's environment, read once when the app is
// made (newApp): the connection settings' variables, STAN_DIR and the
// variables a plan's *_env fields name are all looked up in it.
type environment map[string]string

func readEnvironment() environment {
	env := environment{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}
