package domains

import (
	"strings"
	"testing"
)

func TestTransitions(t *testing.T) {
	all := []State{Starting, Running, Paused, Suspended, Stopping, Stopped, Migrating, Detached}
	allowed := map[string]map[State]bool{
		"start":    {Stopped: true, Suspended: true},
		"receive":  {Stopped: true},
		"save":     {Running: true, Paused: true},
		"migrate":  {Running: true, Paused: true},
		"pause":    {Running: true},
		"unpause":  {Paused: true},
		"shutdown": {Running: true, Paused: true},
		"reboot":   {Running: true, Paused: true},
		"destroy":  {Starting: true, Running: true, Paused: true, Stopping: true},
		"delete":   {Stopped: true, Suspended: true, Detached: true},
		"offline":  {Stopped: true},
		"detach":   {Stopped: true},
		"attach":   {Detached: true},
	}
	for op, ok := range allowed {
		for _, s := range all {
			err := check("d1", op, s)
			if ok[s] && err != nil {
				t.Errorf("%s from %s refused: %v", op, s, err)
			}
			if !ok[s] {
				if err == nil {
					t.Errorf("%s from %s allowed", op, s)
					continue
				}
				if KindOf(err) != BadState || !strings.Contains(err.Error(), "d1 is "+string(s)) {
					t.Errorf("%s from %s: %v (want a bad-state error naming the state)", op, s, err)
				}
			}
		}
	}
}

func TestLive(t *testing.T) {
	for s, want := range map[State]bool{Starting: true, Running: true, Paused: true, Stopping: true, Stopped: false, Suspended: false} {
		if s.live() != want {
			t.Errorf("%s.live() = %v", s, !want)
		}
	}
}
