package freeport

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAPortIsReservedForTheLifeOfTheProcess: the port Port hands out
// cannot be reserved again, neither by this process nor by another one
// (a child running this test binary), while this process lives; so no
// other test package's server is given it.
func TestAPortIsReservedForTheLifeOfTheProcess(t *testing.T) {
	if held := os.Getenv("FREEPORT_HELD"); held != "" {
		os.Stdout.WriteString("reserved=" + strconv.FormatBool(reserve(held)) + "\n")
		return
	}
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(os.TempDir(), "stanmigrate-ports", strconv.Itoa(p))
	if reserve(path) {
		t.Fatalf("port %d reserved a second time by the process that holds it", p)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestAPortIsReservedForTheLifeOfTheProcess$")
	cmd.Env = append(os.Environ(), "FREEPORT_HELD="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "reserved=false") {
		t.Fatalf("another process could reserve port %d, which this one holds:\n%s", p, out)
	}
}
