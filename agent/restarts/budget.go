package restarts

import (
	"fmt"
	"time"
)

// Budget bounds automatic restarts: at most Max within any Window.
type Budget struct {
	Window time.Duration
	Max    int
}

// Default is every domain's budget: three restarts a minute.
var Default = Budget{Window: time.Minute, Max: 3}

// Verdict is the budget's answer for one restart.
type Verdict struct {
	// Restart says whether the domain may be restarted now.
	Restart bool
	// History is the restart times to keep when Restart is set: the
	// earlier ones still within the window, and now.
	History []time.Time
	// Why says, when Restart is not set, what the budget spent:
	// "3 restarts within 1m0s".
	Why string
}

// Take asks for one restart at now, given the times of the earlier ones.
// A restart counts while it is less than Window old.
func (b Budget) Take(history []time.Time, now time.Time) Verdict {
	var recent []time.Time
	for _, t := range history {
		if now.Sub(t) < b.Window {
			recent = append(recent, t)
		}
	}
	if len(recent) >= b.Max {
		return Verdict{Why: fmt.Sprintf("%d restarts within %s", len(recent), b.Window)}
	}
	return Verdict{Restart: true, History: append(recent, now)}
}
