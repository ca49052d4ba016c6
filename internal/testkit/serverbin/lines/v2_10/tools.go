//go:build tools

// Package pin makes "go mod tidy" keep the nats-server requirement of this
// nested module: the serverbin test rig builds the nats-server command from
// here so that this directory's go.sum pins every dependency.
package pin

import _ "github.com/nats-io/nats-server/v2"
