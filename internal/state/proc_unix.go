//go:build unix

package state

import (
	"errors"
	"os"
	"syscall"
)

// processAlive: signal 0 reaches the process (EPERM: it exists, not ours).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// pidNamespace tells two containers sharing a host name apart: a PID
// means the same process only within one PID namespace.
func pidNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
}
