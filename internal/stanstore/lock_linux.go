//go:build linux

package stanstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// fOFDGetLK is F_OFD_GETLK (Linux 3.15+): like F_GETLK, but it also
// reports locks held by this very process, which F_GETLK would not.
const fOFDGetLK = 36

// ftLockHolder tests the fault-tolerance lock a STAN server in FT mode
// holds on <dir>/.rootdir.lck (a POSIX write lock on the whole file, see
// util.CreateLockFile) without taking it and without creating the file.
// It returns a description of the holder, or "" when nobody holds it.
func ftLockHolder(dir string) (string, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open %s to test the FT lock: %w", path, err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	err = syscall.FcntlFlock(f.Fd(), fOFDGetLK, &lk)
	if errors.Is(err, syscall.EINVAL) {
		lk = syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
		err = syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk)
	}
	if err != nil {
		return "", fmt.Errorf("test the FT lock on %s: %w", path, err)
	}
	if lk.Type == syscall.F_UNLCK {
		return "", nil
	}
	who := "a process"
	if lk.Pid > 0 {
		who = describePID(int(lk.Pid))
	}
	return fmt.Sprintf("%s holds the fault-tolerance lock on %s", who, path), nil
}

// writerHolder looks for a process that has one of the store's files open
// for writing: a running STAN server opens every store file read-write
// and keeps server.dat and clients.dat open while it runs, and a non-FT
// server takes no lock at all. Files are matched by device and inode, so
// a server in a container that mounts the directory elsewhere is found
// too. Processes whose descriptors this user may not inspect (other
// users' processes, unless run as root) cannot be checked; readers such
// as this one or a backup tool open files read-only and do not count.
func writerHolder(dir string) (string, error) {
	files, err := storeFiles(dir)
	if err != nil || len(files) == 0 {
		return "", err
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return "", nil // no procfs: nothing to check with
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to inspect
		}
		for _, fd := range fds {
			st, err := os.Stat(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			sys, ok := st.Sys().(*syscall.Stat_t)
			if !ok {
				continue
			}
			name, ok := files[fileKey{uint64(sys.Dev), sys.Ino}]
			if !ok || !openForWriting(p.Name(), fd.Name()) {
				continue
			}
			return fmt.Sprintf("%s has %s open for writing", describePID(pid), name), nil
		}
	}
	return "", nil
}

type fileKey struct{ dev, ino uint64 }

// storeFiles maps the regular files of the store (the root and each
// channel directory) to their paths.
func storeFiles(dir string) (map[fileKey]string, error) {
	out := map[fileKey]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			err = addFiles(p, out)
		} else {
			err = addFile(p, out)
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", p, err)
		}
	}
	return out, nil
}

func addFiles(d string, out map[fileKey]string) error {
	ents, err := os.ReadDir(d)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() {
			if err := addFile(filepath.Join(d, e.Name()), out); err != nil {
				return err
			}
		}
	}
	return nil
}

func addFile(p string, out map[fileKey]string) error {
	st, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		out[fileKey{uint64(sys.Dev), sys.Ino}] = p
	}
	return nil
}

// openForWriting reads the descriptor's open flags from fdinfo.
func openForWriting(pid, fd string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "fdinfo", fd))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "flags:")
		if !ok {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
		if err != nil {
			return false
		}
		return flags&syscall.O_ACCMODE != syscall.O_RDONLY
	}
	return false
}

func describePID(pid int) string {
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return fmt.Sprintf("process %d", pid)
	}
	return fmt.Sprintf("process %d (%s)", pid, strings.TrimSpace(string(comm)))
}
