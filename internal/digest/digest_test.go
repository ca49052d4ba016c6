package digest

import "testing"

func TestDigestDetectsEachChange(t *testing.T) {
	base := func() *Channel {
		d := New()
		d.Add(1, "a", []byte("x"))
		d.Add(2, "a", []byte("y"))
		return d
	}
	want := base().Sum()
	variants := map[string]func(*Channel){
		"payload": func(d *Channel) { d.Add(1, "a", []byte("x")); d.Add(2, "a", []byte("z")) },
		"subject": func(d *Channel) { d.Add(1, "a", []byte("x")); d.Add(2, "b", []byte("y")) },
		"seq":     func(d *Channel) { d.Add(1, "a", []byte("x")); d.Add(3, "a", []byte("y")) },
		"framing": func(d *Channel) { d.Add(1, "ax", nil); d.Add(2, "a", []byte("y")) },
		"missing": func(d *Channel) { d.Add(1, "a", []byte("x")) },
	}
	for name, f := range variants {
		d := New()
		f(d)
		if d.Sum() == want {
			t.Errorf("%s change not detected", name)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	d := New()
	d.Add(5, "s", []byte("one"))
	st, err := d.State()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Restore(st, d.Count, d.First, d.Last)
	if err != nil {
		t.Fatal(err)
	}
	d.Add(6, "s", []byte("two"))
	r.Add(6, "s", []byte("two"))
	if d.Sum() != r.Sum() || r.Count != 2 || r.First != 5 || r.Last != 6 {
		t.Fatalf("restored digest diverged: %s vs %s (%d %d %d)", d.Sum(), r.Sum(), r.Count, r.First, r.Last)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	d := New()
	payload := make([]byte, 128)
	d.Add(1, "orders.eu", payload)
	if n := testing.AllocsPerRun(100, func() { d.Add(2, "orders.eu", payload) }); n != 0 {
		t.Fatalf("Add allocates %.0f times per message", n)
	}
}

// A digest rewound to a mark forgets what was added after it, as migrate
// needs when hashed messages were never stored.
func TestRewindForgetsWhatCameAfterTheMark(t *testing.T) {
	d := New()
	d.Add(7, "s", []byte("one"))
	d.Add(8, "s", []byte("two"))
	m, err := d.Mark()
	if err != nil {
		t.Fatal(err)
	}
	want := d.Sum()
	d.Add(9, "s", []byte("three"))
	d.Add(10, "s", []byte("four"))
	if err := d.Rewind(m); err != nil {
		t.Fatal(err)
	}
	if d.Sum() != want || d.Count != 2 || d.First != 7 || d.Last != 8 {
		t.Fatalf("rewound digest %s (%d msgs %d..%d), want %s (2 msgs 7..8)", d.Sum(), d.Count, d.First, d.Last, want)
	}
	// And it carries on from there like one that never went further.
	d.Add(9, "s", []byte("other"))
	e := New()
	e.Add(7, "s", []byte("one"))
	e.Add(8, "s", []byte("two"))
	e.Add(9, "s", []byte("other"))
	if d.Sum() != e.Sum() {
		t.Fatal("a rewound digest diverges from one built without the rewound messages")
	}
}
