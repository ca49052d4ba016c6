// Package freeport picks TCP ports for embedded servers (the demo's and
// the test rigs').
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
)

// Port returns a loopback TCP port that was free a moment ago and that no
// other process using this package holds.
//
// It picks from 20000-32767, below Linux's ephemeral range (32768 and
// up): a port the kernel handed out would be reused for the outgoing
// connections the tests make by the hundred, so between this call and the
// server's bind another socket could take it. Each port returned is
// reserved for the life of the process (see reserve): test packages run
// at once, and a server restarted on its ports, or a standby started
// seconds after its ports were picked, must not find them taken by
// another package's server.
func Port() (int, error) {
	dir := filepath.Join(os.TempDir(), "stanmigrate-ports")
	_ = os.MkdirAll(dir, 0o777)
	for range 200 {
		port := 20000 + rand.IntN(12768)
		if !reserve(filepath.Join(dir, fmt.Sprint(port))) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("find a free port: none free in 20000-32767 after 200 tries")
}
