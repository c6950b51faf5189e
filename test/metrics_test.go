package test

import (
	"math"
	"net"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ovs-agent/ovs-agent/agent/client"
)

// scrape reads a's /metrics with Prometheus' own text parser; status is
// the HTTP status, families nil unless it is 200.
func scrape(t *testing.T, url, user, password string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	return scrapeFrom(t, "", url, user, password)
}

// scrapeFrom is scrape from the local address from ("": any).
func scrapeFrom(t *testing.T, from, url, user, password string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	hc := http.DefaultClient
	if from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		hc = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return resp.StatusCode, fams
}

// metric is the value of the family's series whose labels include
// labels (a counter's, a gauge's, or a histogram's sum), and whether
// there is one; count is a histogram's sample count.
func metric(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (value float64, count uint64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, 0, false
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), 0, true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), 0, true
		case m.Histogram != nil:
			return m.Histogram.GetSampleSum(), m.Histogram.GetSampleCount(), true
		}
	}
	return 0, 0, false
}

// TestMetricsAfterAMigration scrapes the source agent's /metrics after a
// live migration, with Prometheus' parser: the migration's figures are
// the ones migration.status gave (outcome, bytes sent, downtime, total
// time), the API calls are counted by method and result, a failed login
// is counted, and the target counts its running domain. The [access]
// rules and the password apply to scrapers.
func TestMetricsAfterAMigration(t *testing.T) {
	srcMetrics := "127.0.0.2:" + itoa(freePort(t, "127.0.0.2"))
	dstMetrics := "127.0.0.3:" + itoa(freePort(t, "127.0.0.3"))
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent":   {"hypervisor = sim", "memory_reserve = 0"},
		"metrics": {"address = " + srcMetrics},
	}})
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Deny: "127.0.0.5", Extra: map[string][]string{
		"agent":   {"hypervisor = sim", "memory_reserve = 0"},
		"metrics": {"address = " + dstMetrics, "auth = no"},
	}})
	src.call(t, "domain.create", nil, vmcfgText("m1", 128, "dirty=8M/s,hot=16M,verify=200ms"))
	src.call(t, "domain.start", nil, "m1")
	var id string
	src.call(t, "domain.migrate", &id, "m1", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	st := waitMigration(t, src, id)
	if st.Phase != "completed" {
		t.Fatalf("migration: %+v", st)
	}
	dst.waitInfo(t, "m1", "running on the target", func(i domInfo) bool { return i.State == "running" })
	// A wrong password on the API.
	bad, err := client.New(client.Options{URL: src.URL(), User: "admin", Password: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := bad.Call(t.Context(), "agent.version", &v); err == nil {
		t.Fatal("a wrong password was accepted")
	}

	url := "http://" + srcMetrics + "/metrics"
	if code, _ := scrape(t, url, "", ""); code != http.StatusUnauthorized {
		t.Errorf("a scrape without the password: HTTP %d, want 401", code)
	}
	code, fams := scrape(t, url, "admin", testPassword)
	if code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", code)
	}
	check := func(name string, labels map[string]string, want float64, what string) {
		t.Helper()
		got, _, ok := metric(fams, name, labels)
		if !ok || math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%s%v = %v (present %v), want %v (%s)", name, labels, got, ok, want, what)
		}
	}
	check("ovs_migrations_total", map[string]string{"outcome": "completed"}, 1, "one completed move")
	check("ovs_migration_sent_bytes_total", nil, float64(st.BytesSent), "migration.status bytes_sent")
	check("ovs_migration_downtime_seconds", nil, st.DowntimeMs/1000, "migration.status downtime_ms")
	check("ovs_migration_duration_seconds", nil, st.Total, "migration.status total_seconds")
	if _, n, _ := metric(fams, "ovs_migration_downtime_seconds", nil); n != 1 {
		t.Errorf("downtime samples %d, want 1", n)
	}
	check("ovs_api_requests_total", map[string]string{"method": "domain.migrate", "result": "ok"}, 1, "one domain.migrate")
	if n, _, _ := metric(fams, "ovs_api_requests_total", map[string]string{"method": "migration.status", "result": "ok"}); n < 1 {
		t.Errorf("migration.status calls counted: %v, want the test's polls", n)
	}
	check("ovs_api_login_failures_total", nil, 1, "one wrong password")

	// The target: no password asked (auth = no), its running domain
	// counted and its counters there; [access] deny applies.
	if code, _ := scrapeFrom(t, "127.0.0.5", "http://"+dstMetrics+"/metrics", "", ""); code != http.StatusForbidden {
		t.Errorf("a scrape from a denied address: HTTP %d, want 403", code)
	}
	code, dfams := scrapeFrom(t, "127.0.0.4", "http://"+dstMetrics+"/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("target scrape: HTTP %d", code)
	}
	if n, _, _ := metric(dfams, "ovs_domains", map[string]string{"state": "running", "engine": "sim"}); n != 1 {
		t.Errorf("target's running sim domains: %v, want 1", n)
	}
	if _, _, ok := metric(dfams, "ovs_domain_cpu_seconds_total", map[string]string{"domain": "m1"}); !ok {
		t.Error("the target has no CPU counter for its running domain")
	}
}
