//go:build unix

package freeport

import (
	"os"
	"sync"
	"syscall"
)

// held keeps every reservation's lock open until the process exits,
// when the kernel drops the locks.
var (
	mu   sync.Mutex
	held []*os.File
)

// reserve takes an exclusive lock on the port's file for the life of the
// process; false when another process (or an earlier pick of this one)
// holds it. Where the file cannot be made, the port is not reserved but
// still tried.
func reserve(path string) bool {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	mu.Lock()
	held = append(held, f)
	mu.Unlock()
	return true
}
