package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOVM3HostChanges: update_agent_password changes the API password in
// the agent.ini the agent runs on and reloads it: the new password logs
// in, the old one no longer does, and the file keeps its comments. And
// set_ntp, enable_ntp, disable_ntp write the [agent] ntp_file and run the
// ntp_*_command (here a script that logs its argument).
func TestOVM3HostChanges(t *testing.T) {
	dir := t.TempDir()
	ntpFile := filepath.Join(dir, "timesyncd.conf.d", "ovs-agent.conf")
	ntpLog := filepath.Join(dir, "ntp.log")
	script := filepath.Join(dir, "ntp.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$*\" >> "+ntpLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentConf{Extra: map[string][]string{
		"auth":  {"failed_login_delay = 0s"},
		"agent": {"ntp_file = " + ntpFile, "ntp_enable_command = " + script + " enable", "ntp_disable_command = " + script + " disable", "ntp_restart_command = " + script + " restart"},
	}})
	c := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	before, _ := os.ReadFile(a.Config)

	// get_datetime: the local time as set_datetime's six ints.
	now := time.Now()
	dt := c.ok(t, "get_datetime")
	if dt.Type != "array" || len(dt.Items) != 6 {
		t.Fatalf("get_datetime: %s", dt)
	}
	var parts [6]int
	for i, it := range dt.Items {
		if it.Type != "int" {
			t.Fatalf("get_datetime item %d: %s", i, it)
		}
		parts[i], _ = strconv.Atoi(it.Text)
	}
	got := time.Date(parts[0], time.Month(parts[1]), parts[2], parts[3], parts[4], parts[5], 0, time.Local)
	if d := got.Sub(now); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("get_datetime %v is %v from this host's %v", dt, d, now)
	}

	// set_statistics_interval: the host's CPU figure becomes the last
	// whole window's, the same for every caller, shown by discover_server
	// and kept across a restart; a bad value changes nothing.
	interval := func(c o3Client) string {
		root := parseDoc(t, "discover_server", c.ok(t, "discover_server").Text)
		n, _ := root.path("Server/Statistic/Interval")
		return n.Text
	}
	if got := interval(c); got != "0" {
		t.Errorf("Statistic/Interval before any set_statistics_interval: %q", got)
	}
	c.refused(t, -32602, "set_statistics_interval", -1)
	c.refused(t, -32602, "set_statistics_interval", 3601)
	if got := interval(c); got != "0" {
		t.Errorf("Statistic/Interval after refused calls: %q", got)
	}
	c.done(t, "set_statistics_interval", 1)
	if got := interval(c); got != "1" {
		t.Errorf("Statistic/Interval after set_statistics_interval 1: %q", got)
	}
	window := func() (cpu, secs string) {
		st := c.ok(t, "host.stats")
		return st.Members["cpu_busy_percent"].Text, st.Members["cpu_interval_seconds"].Text
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, secs := window()
		if f, _ := strconv.ParseFloat(secs, 64); f > 0.5 && f < 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host.stats' CPU window never became the 1 s interval: %s s", secs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.done(t, "set_statistics_interval", 600) // a window no test waits for
	cpu1, secs1 := window()
	time.Sleep(1200 * time.Millisecond) // measured between calls, the second would be a new figure over ~1.2 s
	cpu2, secs2 := window()
	if cpu1 != cpu2 || secs1 != secs2 {
		t.Errorf("two callers in one window read %s%% over %s s and %s%% over %s s", cpu1, secs1, cpu2, secs2)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.waitReady()
	if got := interval(c); got != "600" {
		t.Errorf("Statistic/Interval after a restart: %q", got)
	}
	c.done(t, "set_statistics_interval", 0)
	if got := interval(c); got != "0" {
		t.Errorf("Statistic/Interval after set_statistics_interval 0: %q", got)
	}

	// The time service.
	c.refused(t, -32602, "set_ntp", []string{"ntp1.example.org", "x\nNTP=evil"}, true)
	c.refused(t, -32602, "set_ntp", []string{"a b"}, true)
	if _, err := os.Stat(ntpFile); !os.IsNotExist(err) {
		t.Fatalf("a refused set_ntp wrote %s: %v", ntpFile, err)
	}
	c.done(t, "set_ntp", []string{"ntp1.example.org", "192.0.2.1"}, true)
	if b, _ := os.ReadFile(ntpFile); !strings.Contains(string(b), "[Time]\nNTP=ntp1.example.org 192.0.2.1\n") {
		t.Errorf("ntp_file after set_ntp:\n%s", b)
	}
	ntp := c.ok(t, "get_ntp")
	o3Shape(t, "get_ntp", ntp)
	if len(ntp.Items[0].Items) < 2 || ntp.Items[0].Items[0].Text != "ntp1.example.org" || ntp.Items[0].Items[1].Text != "192.0.2.1" {
		t.Errorf("get_ntp after set_ntp: %s", ntp)
	}
	c.done(t, "set_ntp", []string{"ntp2.example.org"}, false)
	c.done(t, "enable_ntp")
	c.done(t, "disable_ntp")
	if b, _ := os.ReadFile(ntpLog); string(b) != "enable\nrestart\ndisable\nenable\ndisable\n" {
		t.Errorf("time service commands run: %q", b)
	}

	c.refused(t, -32602, "update_agent_password", "oracle", "new-secret") // not the configured user
	c.refused(t, -32602, "update_agent_password", "admin", "")
	c.refused(t, -32602, "update_agent_password", "admin", strings.Repeat("x", 73))
	c.refused(t, 1000, "update_agent_password", "admin", "new-secret", "not-the-old-one")
	if after, _ := os.ReadFile(a.Config); string(after) != string(before) {
		t.Fatalf("a refused update_agent_password changed %s", a.Config)
	}
	c.done(t, "update_agent_password", "admin", "new-secret", testPassword) // agent 3.3's form

	if msg := c.refused(t, 1000, "echo", "x"); strings.Contains(msg, testPassword) {
		t.Errorf("the old password's fault shows it: %q", msg)
	}
	n := c
	n.pass = "new-secret"
	if v := n.ok(t, "echo", "x"); v.Text != "x" {
		t.Errorf("echo with the new password: %s", v)
	}
	n.done(t, "update_agent_password", "admin", "newer") // agent 3.2's form
	n.refused(t, 1000, "echo", "x")
	n.pass = "newer"
	n.ok(t, "echo", "x")
	after, _ := os.ReadFile(a.Config)
	if strings.Contains(string(after), "new-secret") || strings.Contains(string(after), "newer") || !strings.Contains(string(after), "password_hash = $2") {
		t.Errorf("agent.ini after update_agent_password:\n%s", after)
	}
	// Everything but the hash is as it was.
	strip := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "password_hash") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if strip(string(after)) != strip(string(before)) {
		t.Errorf("update_agent_password changed more than the hash:\n%s\n--- was:\n%s", after, before)
	}
}
