package naming

import (
	"strings"
	"testing"
)

func TestLegal(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct{ in, want string }{
		{"orders", "orders"},
		{"orders.eu", "orders_eu"},
		{"a.*.>", "a____"},
		{"with space\ttab", "with_space_tab"},
		{"path/to\\x", "path_to_x"},
		{"", "_"},
	}
	for _, tt := range tests {
		if got := Legal(tt.in); got != tt.want {
			t.Errorf("Legal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	got := Legal(long)
	if len(got) != MaxNameLen {
		t.Fatalf("long name: length %d, want %d", len(got), MaxNameLen)
	}
	if Legal(long+"b") == got {
		t.Fatal("two long names that differ after the cut map to the same name")
	}
	if Legal(long) != got {
		t.Fatal("mapping is not deterministic")
	}
}

func TestCollisions(t *testing.T) {
	c := Collisions(map[string]string{
		"orders.eu": StreamName("orders.eu"),
		"orders_eu": StreamName("orders_eu"),
		"Orders.EU": StreamName("Orders.EU"),
		"payments":  StreamName("payments"),
	})
	if len(c) != 1 {
		t.Fatalf("want one collision group, got %v", c)
	}
	got := c["orders_eu"]
	if strings.Join(got, ",") != "Orders.EU,orders.eu,orders_eu" {
		t.Fatalf("collision group = %v", got)
	}
}

func TestSubjectsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"orders.eu", "orders.eu", true},
		{"orders.eu", "orders.us", false},
		{"orders.*", "orders.eu", true},
		{"orders.>", "orders.eu.x", true},
		{">", "anything", true},
		{"orders.*", "orders.eu.x", false},
		{"orders", "orders.eu", false},
		{"*.eu", "orders.*", true},
	}
	for _, tt := range tests {
		if got := SubjectsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
