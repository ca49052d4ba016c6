//go:build !linux

package serverbin

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
