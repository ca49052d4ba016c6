package source

import (
	"reflect"
	"testing"
)

// TestMergeSeesDurablesAsSTANDoes: a durable queue group is one durable
// (furthest last_sent, pending merged without repeats, online when any
// member is, the offline shadow's client id kept); a plain durable is its
// own; non-durables stay apart; with every pending set known each durable
// gets its exact stored position, and with one unknown none does.
func TestMergeSeesDurablesAsSTANDoes(t *testing.T) {
	subs := []Sub{
		{ClientID: "shadow", Durable: "settle", QueueGroup: "settlers", IsDurable: true, LastSent: 900, PendingCount: 2, Pending: []uint64{170, 880}, HasPending: true},
		{ClientID: "settler-2", Durable: "settle", QueueGroup: "settlers", IsDurable: true, Online: true, LastSent: 950, PendingCount: 2, Pending: []uint64{880, 940}, HasPending: true},
		{ClientID: "settler-1", Durable: "settle", QueueGroup: "settlers", IsDurable: true, Online: true, LastSent: 920, PendingCount: 1, Pending: []uint64{910}, HasPending: true},
		{ClientID: "billing", Durable: "invoicer", IsDurable: true, LastSent: 12, PendingCount: 1, Pending: []uint64{7}, HasPending: true},
		{ClientID: "tail", QueueGroup: "watchers"},
		{ClientID: "peek"},
	}
	durables, nonDurables := Merge(subs)
	if len(durables) != 2 {
		t.Fatalf("%d durables, want the group and the plain one: %+v", len(durables), durables)
	}
	plain, group := durables[0], durables[1]
	if plain.Key() > group.Key() {
		plain, group = group, plain
		t.Errorf("durables not sorted by key: %q before %q", durables[0].Key(), durables[1].Key())
	}
	if plain.ClientID != "billing" || plain.Durable != "invoicer" || plain.LastSent != 12 || plain.Online ||
		plain.Stored == nil || !reflect.DeepEqual(plain.Stored.Pending, []uint64{7}) {
		t.Errorf("plain durable %+v (stored %+v)", plain, plain.Stored)
	}
	if group.QueueGroup != "settlers" || group.Durable != "settle" || group.ClientID != "shadow" || !group.Online ||
		!reflect.DeepEqual(group.Members, []string{"settler-1", "settler-2"}) || group.LastSent != 950 {
		t.Errorf("queue group %+v", group)
	}
	wantPending := []uint64{170, 880, 910, 940}
	if group.Stored == nil || !reflect.DeepEqual(group.Stored.Pending, wantPending) || group.PendingCount != len(wantPending) || group.Stored.LastSent != 950 {
		t.Errorf("queue group stored %+v, count %d; want pending %v once each, last_sent 950", group.Stored, group.PendingCount, wantPending)
	}
	if !reflect.DeepEqual(nonDurables, []NonDurable{{ClientID: "tail", QueueGroup: "watchers"}, {ClientID: "peek"}}) {
		t.Errorf("non-durables %+v", nonDurables)
	}

	// Monitoring gives counts, not sets: no stored position, counts summed.
	subs[3].HasPending, subs[3].Pending = false, nil
	durables, _ = Merge(subs)
	for _, d := range durables {
		if d.Stored != nil {
			t.Errorf("%s: stored position %+v though one pending set is unknown", d.Key(), d.Stored)
		}
	}
	for _, d := range durables {
		if d.QueueGroup == "settlers" && d.PendingCount != 5 {
			t.Errorf("queue group pending count %d, want the members' 2+2+1", d.PendingCount)
		}
	}
}
