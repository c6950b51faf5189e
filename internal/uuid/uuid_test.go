package uuid

import (
	"regexp"
	"testing"
)

func TestNewIsRandomVersion4(t *testing.T) {
	form := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		u, err := New()
		if err != nil || !form.MatchString(u) {
			t.Fatalf("New() = %q, %v", u, err)
		}
		if seen[u] {
			t.Fatalf("New() repeated %s", u)
		}
		seen[u] = true
	}
}
