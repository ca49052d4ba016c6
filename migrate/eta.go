package migrate

import (
	"math"
	"time"
)

// rateWindow is the time constant of a channel's recent copy rate: what
// happened a minute ago hardly counts, what happened in the last ten
// seconds does.
const rateWindow = 10 * time.Second

// recentRate follows a channel's copy rate in messages per second as its
// checkpoints are written (an exponentially weighted mean), so that the
// checkpoint can carry it and `status` estimate when the channel will be
// done without asking the servers.
type recentRate struct {
	seq  uint64
	at   time.Time
	rate float64
}

// update folds in that the stream held up to seq at now, and returns the
// rate.
func (r *recentRate) update(seq uint64, now time.Time) float64 {
	if r.at.IsZero() || seq < r.seq {
		r.seq, r.at = seq, now
		return r.rate
	}
	dt := now.Sub(r.at).Seconds()
	if dt <= 0 {
		return r.rate
	}
	inst := float64(seq-r.seq) / dt
	w := 1 - math.Exp(-dt/rateWindow.Seconds())
	if r.rate == 0 {
		w = 1
	}
	r.rate += w * (inst - r.rate)
	r.seq, r.at = seq, now
	return r.rate
}
