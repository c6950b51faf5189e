package agent

import (
	"strings"
	"testing"
	"time"
)

func TestMigrationOptions(t *testing.T) {
	o, dry, err := migrationOptions(map[string]any{
		"live": true, "ssl": true, "dry_run": true, "rate": int64(20), "port": int64(8003),
		"max_downtime": int64(50), "parallel": int64(4), "user": "root", "password": "pw", "fingerprint": "ab",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Live || !o.SSL || !dry || o.RateLimit != 20e6 || o.Port != 8003 || o.MaxDowntime != 50*time.Millisecond ||
		o.Parallel != 4 || o.User != "root" || o.Password != "pw" || o.Fingerprint != "ab" {
		t.Fatalf("options: %+v dry=%v", o, dry)
	}
	for _, tc := range []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"live": "yes"}, "option live: want a boolean"},
		{map[string]any{"rate": int64(-1)}, "option rate: want a non-negative int"},
		{map[string]any{"port": int64(70000)}, "option port: want a port number"},
		{map[string]any{"parallel": int64(65)}, "option parallel: want 1 to 64 streams"},
		{map[string]any{"user": int64(1)}, "option user: want a string"},
		{map[string]any{"speed": int64(1)}, `unknown option "speed"`},
	} {
		_, _, err := migrationOptions(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("migrationOptions(%v) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
