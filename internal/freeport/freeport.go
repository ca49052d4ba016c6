// Package freeport picks TCP ports for embedded servers (the demo's and
// the test rigs').
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
)

// Port returns a loopback TCP port that was free a moment ago.
//
// It picks from 20000-32767, below Linux's ephemeral range (32768 and
// up): a port the kernel handed out would be reused for the outgoing
// connections the tests make by the hundred, so between this call and the
// server's bind another socket could take it. Random picks keep test
// packages running at once apart.
func Port() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("find a free port: none free in 20000-32767 after 200 tries")
}
