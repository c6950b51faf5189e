package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateFromPathQuotesNothing: a file inside the allowed directories
// that is not a valid vm.cfg is refused without a word of its content in
// the fault or in the agent's log; inline text (the caller's own) is still
// quoted, so typos stay easy to find.
func TestCreateFromPathQuotesNothing(t *testing.T) {
	a := domainAgent(t, "sim")
	path := filepath.Join(t.TempDir(), "shadow-like")
	secret := "root:$6$SECRETHASH:19000:0:99999:7:::\nsvc_hunter2:x:1:1\nmemory = 'hunter2'\n"
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	f := a.fault(t, "domain.create", path)
	if f.Code != 1010 || !strings.Contains(f.Message, "not a valid vm.cfg") || !strings.Contains(f.Message, ":1:") {
		t.Fatalf("fault: %v", f)
	}
	for _, word := range []string{"SECRETHASH", "root:", "svc_hunter2", "hunter2", "19000"} {
		if strings.Contains(f.Message, word) {
			t.Errorf("the fault quotes the file (%q): %s", word, f.Message)
		}
		if strings.Contains(a.Log(), word) {
			t.Errorf("the agent log quotes the file (%q)", word)
		}
	}
	// The caller's own text is quoted as before.
	if f := a.fault(t, "domain.create", "name = 'x'\nmemory = 'lots'\n"); !strings.Contains(f.Message, `"lots"`) {
		t.Errorf("inline text no longer quoted: %v", f)
	}
}
