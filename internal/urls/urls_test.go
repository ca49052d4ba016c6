package urls

import (
	"strings"
	"testing"
)

// TestCheckList goes through the URL grammar a user can get wrong in
// --stan-url, --nats-url and --stan-monitor, and what is right.
func TestCheckList(t *testing.T) {
	nats := []string{"nats", "tls", "ws", "wss"}
	tests := []struct {
		list    string
		schemes []string
		want    string // "" means accepted
	}{
		{"nats://127.0.0.1:4222", nats, ""},
		{"127.0.0.1:4222", nats, ""},
		{"localhost", nats, ""},
		{"nats://host:", nats, ""},
		{"nats://[::1]:4222", nats, ""},
		{"nats://[::1]", nats, ""},
		{"[fe80::1%25eth0]:4222", nats, ""},
		{"nats://u:p@127.0.0.1:4222, tls://b:4222", nats, ""},
		{"http://127.0.0.1:8222/nats/", []string{"http", "https"}, ""},
		{"nats://::::", nats, "more than one colon"},
		{"nats://::1:4222", nats, "more than one colon"},
		{"::1", nats, "more than one colon"},
		{"nats://:::4222", nats, "more than one colon"},
		{"nats://[::1:4222", nats, "does not parse"},
		{"http://::::8222", []string{"http", "https"}, "more than one colon"},
		{"https://u:p@fe80::1:8222/x", []string{"http", "https"}, "more than one colon"},
		{"nats://[nothost]:4222", nats, "does not parse"},
		{"nats://:4222", nats, "names no host"},
		{"nats://", nats, "names no host"},
		{"nats://a:4222,,nats://b:4222", nats, "entry 2 of 3: is empty"},
		{"nats://a:4222,", nats, "entry 2 of 2: is empty"},
		{"", nats, "is empty"},
		{"nats://a:99999", nats, `port "99999"`},
		{"nats://a:0", nats, `port "0"`},
		{"http://127.0.0.1:4222", nats, `scheme "http" is not nats, tls, ws or wss`},
		{"nats://127.0.0.1:8222", []string{"http", "https"}, `scheme "nats" is not http or https`},
	}
	for _, tt := range tests {
		err := CheckList(tt.list, tt.schemes...)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: refused: %v", tt.list, err)
		case tt.want != "" && err == nil:
			t.Errorf("%q: accepted, want an error with %q", tt.list, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("%q: %v, want it to say %q", tt.list, err, tt.want)
		}
	}
}

// TestCheckListKeepsPasswordsOut: a URL that does not parse is not quoted
// back, since it may hold a password.
func TestCheckListKeepsPasswordsOut(t *testing.T) {
	for _, list := range []string{"nats://alice:s3cret@[::1:4222", "nats://alice:s3cret@::1:4222", "nats://alice:s3cret@h:0"} {
		if err := CheckList(list, "nats"); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v", list, err)
		}
	}
}
