package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakeSource struct{}

func (fakeSource) Domains() []Domain {
	return []Domain{
		{Name: "web", State: "running", Engine: "qemu", CPUSeconds: 12.5, ResidentBytes: 1 << 30},
		{Name: "db", State: "stopped", Engine: "qemu"},
	}
}

func (fakeSource) Repositories() []Repository {
	return []Repository{{UUID: "0004fb00", State: "mounted", SizeBytes: 100 << 30, FreeBytes: 40 << 30}}
}

// TestLabelsStayBounded: a method the agent does not serve, an outcome
// or refusal reason it does not know, each count under one fixed label,
// so that a caller cannot grow the label sets; a stopped domain has no
// per-domain series.
func TestLabelsStayBounded(t *testing.T) {
	m := New(fakeSource{}, func(s string) bool { return s == "domain.list" })
	for i := 0; i < 50; i++ {
		m.APICall("made.up."+strings.Repeat("x", i), true, time.Millisecond)
	}
	m.APICall("domain.list", false, time.Millisecond)
	m.RelocationRefused("anything")
	m.MigrationEnded(Migration{Outcome: "weird"})
	m.MigrationEnded(Migration{Outcome: "completed", Live: true, Total: 2 * time.Second, Downtime: 30 * time.Millisecond, SentBytes: 1000})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`ovs_api_requests_total{method="unknown",result="fault"} 50`,
		`ovs_api_requests_total{method="domain.list",result="ok"} 1`,
		`ovs_relocation_refused_total{reason="other"} 1`,
		`ovs_migrations_total{outcome="other"} 1`,
		`ovs_migrations_total{outcome="completed"} 1`,
		`ovs_migration_sent_bytes_total 1000`,
		`ovs_migration_downtime_seconds_sum 0.03`,
		`ovs_domains{engine="qemu",state="running"} 1`,
		`ovs_domains{engine="qemu",state="stopped"} 1`,
		`ovs_domain_cpu_seconds_total{domain="web"} 12.5`,
		`ovs_repository_free_bytes{repository="0004fb00"} 4.294967296e+10`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(text, "made.up") {
		t.Error("an unknown method name became a label")
	}
	if strings.Contains(text, `domain="db"`) {
		t.Error("a stopped domain has per-domain series")
	}
}
