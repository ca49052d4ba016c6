package source

import (
	"errors"
	"testing"
)

// TestEnding: Done closes once with the first reason; Err says nothing
// before; Stop closes Stopping and releases once however often Close runs.
func TestEnding(t *testing.T) {
	e := NewEnding()
	if e.Err() != nil {
		t.Fatal("Err before the end")
	}
	select {
	case <-e.Done():
		t.Fatal("Done before the end")
	default:
	}
	first := errors.New("first")
	e.End(first)
	e.End(errors.New("second"))
	<-e.Done()
	if e.Err() != first {
		t.Errorf("Err = %v, want the first reason", e.Err())
	}
	released := 0
	e.Stop(func() { released++ })
	e.Stop(func() { released++ })
	<-e.Stopping()
	if released != 1 {
		t.Errorf("released %d times, want once", released)
	}
}
