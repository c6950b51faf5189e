package pool

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// writeSpecT puts a spec where the master would, bypassing the master
// (a test's shortcut: a real spec is written through Master.Write).
func writeSpecT(t *testing.T, cli *clientv3.Client, pool string, s DomainSpec) {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, SpecKey(pool, s.UUID), string(b)); err != nil {
		t.Fatal(err)
	}
}

func TestDomainKeys(t *testing.T) {
	const u = "0b5cd1f2-0000-4000-8000-000000000001"
	if k := SpecKey("p1", u); k != "/ovs/pools/p1/domains/"+u+"/spec" {
		t.Errorf("SpecKey = %s", k)
	}
	if k := StatusKey("p1", u); k != "/ovs/pools/p1/domains/"+u+"/status" {
		t.Errorf("StatusKey = %s", k)
	}
	if k := OwnerKey("p1", u); k != ownerKey("p1", u) {
		t.Errorf("OwnerKey = %s", k)
	}
	for key, want := range map[string][2]string{
		SpecKey("p1", u):                 {u, "spec"},
		OwnerKey("p1", u):                {u, "owner"},
		"/ovs/pools/p1/domains/" + u:     {},
		"/ovs/pools/p1/domains//spec":    {},
		"/ovs/pools/p1/domains/x/spec/y": {},
		SpecKey("p2", u):                 {},
		"/ovs/pools/p1/members/host-a":   {},
	} {
		uuid, rec, ok := DomainOfKey("p1", key)
		if ok != (want[0] != "") || uuid != want[0] || rec != want[1] {
			t.Errorf("DomainOfKey(%s) = %q, %q, %v; want %q, %q", key, uuid, rec, ok, want[0], want[1])
		}
	}
}

// ReadSpec reads what the master wrote, refuses a spec that does not
// decode or check (saying which key), and says when there is none;
// OwnedDomains lists what is bound to the member's own lease only.
func TestReadSpecAndOwnedDomains(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	a := joinT(t, settings(c, 5*time.Second), "host-a")
	b := joinT(t, settings(c, 5*time.Second), "host-b")
	ctx := ctxFor(t, 30*time.Second)
	const u1, u2, u3 = "d-1", "d-2", "d-3"
	want := DomainSpec{Name: "web", UUID: u1, Config: "name = 'web'\nuuid = 'd-1'\n", HA: true, Desired: DesiredRunning, Preferred: []string{"host-b"}, Priority: 3}
	writeSpecT(t, cli, "test", want)
	got, rev, err := a.ReadSpec(ctx, u1)
	if err != nil || rev == 0 || got.Name != want.Name || got.Config != want.Config || !got.HA || got.Priority != 3 || len(got.Preferred) != 1 {
		t.Fatalf("ReadSpec = %+v, %d, %v; want %+v", got, rev, err, want)
	}
	if _, _, err := a.ReadSpec(ctx, u2); !errors.Is(err, ErrNoSpec) {
		t.Errorf("ReadSpec of a domain without spec: %v", err)
	}
	writeSpecT(t, cli, "test", DomainSpec{Name: "x", UUID: u3, Config: "name = 'x'", Desired: "maybe"})
	if _, _, err := a.ReadSpec(ctx, u3); err == nil || !strings.Contains(err.Error(), SpecKey("test", u3)) || !strings.Contains(err.Error(), `desired "maybe"`) {
		t.Errorf("ReadSpec of a bad spec: %v", err)
	}
	if _, err := cli.Put(ctx, SpecKey("test", u2), "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ReadSpec(ctx, u2); err == nil || !strings.Contains(err.Error(), "does not decode") {
		t.Errorf("ReadSpec of an undecodable spec: %v", err)
	}

	g1, err := a.AcquireOwner(ctx, u1)
	if err != nil {
		t.Fatal(err)
	}
	g3, err := b.AcquireOwner(ctx, u3)
	if err != nil {
		t.Fatal(err)
	}
	if own, err := a.OwnedDomains(ctx); err != nil || len(own) != 1 || own[u1] != g1 {
		t.Errorf("a's OwnedDomains = %v, %v; want %s at %d", own, err, u1, g1)
	}
	if own, err := b.OwnedDomains(ctx); err != nil || len(own) != 1 || own[u3] != g3 {
		t.Errorf("b's OwnedDomains = %v, %v; want %s at %d", own, err, u3, g3)
	}
}

// A member detached (not closed) leaves its lease and what is bound to
// it alive: a member that takes the lease up owns the same domains at
// the same generations.
func TestDetachKeepsLease(t *testing.T) {
	c := etcdtest.Start(t, 1)
	s := settings(c, 5*time.Second)
	ctx := ctxFor(t, 30*time.Second)
	a := joinT(t, s, "host-a")
	gen, err := a.AcquireOwner(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	a.Detach()
	if !errors.Is(a.Err(), ErrClosed) {
		t.Errorf("Err after Detach = %v", a.Err())
	}
	s.Resume = a.Lease()
	again := joinT(t, s, "host-a")
	if !again.Resumed() || again.Lease() != a.Lease() {
		t.Fatalf("join after Detach: lease %x resumed %v, want %x taken up", int64(again.Lease()), again.Resumed(), int64(a.Lease()))
	}
	if own, err := again.OwnedDomains(ctx); err != nil || own["d-1"] != gen {
		t.Errorf("owned after taking the lease up: %v, %v; want d-1 at %d", own, err, gen)
	}
}
