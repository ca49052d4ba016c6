package verify

import "strings"

// ackSeqs reads the stream sequence and the pending count from a JetStream
// ack subject without allocating, as the client's Metadata would:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
//	$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]
func ackSeqs(reply string) (seq, pending uint64, ok bool) {
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return 0, 0, false
	}
	n := strings.Count(reply, ".") + 1
	seqPos, pendPos := 5, 8
	switch {
	case n == 9:
	case n >= 11:
		seqPos, pendPos = 7, 10
	default:
		return 0, 0, false
	}
	for i := 0; i <= pendPos; i++ {
		var tok string
		tok, reply, _ = strings.Cut(reply, ".")
		switch i {
		case seqPos:
			if seq, ok = parseNum(tok); !ok {
				return 0, 0, false
			}
		case pendPos:
			if pending, ok = parseNum(tok); !ok {
				return 0, 0, false
			}
		}
	}
	return seq, pending, true
}

func parseNum(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n, true
}
