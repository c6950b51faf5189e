package pool

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// replyHold forwards TCP between a member and one etcd endpoint; while
// held it passes the member's requests on and keeps etcd's replies back
// (what was held is delivered on release): a request carried out whose
// answer does not come.
type replyHold struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	held  bool
	done  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newReplyHold(t *testing.T, target string) *replyHold {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &replyHold{ln: ln, target: target}
	h.cond = sync.NewCond(&h.mu)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			h.mu.Lock()
			h.conns = append(h.conns, c, d)
			h.mu.Unlock()
			h.wg.Add(2)
			go h.pipe(d, c, false)
			go h.pipe(c, d, true)
		}
	}()
	t.Cleanup(func() {
		h.mu.Lock()
		h.done = true
		conns := h.conns
		h.mu.Unlock()
		h.cond.Broadcast()
		ln.Close()
		for _, c := range conns {
			c.Close()
		}
		h.wg.Wait()
	})
	return h
}

func (h *replyHold) url() string { return "http://" + h.ln.Addr().String() }

func (h *replyHold) set(held bool) {
	h.mu.Lock()
	h.held = held
	h.mu.Unlock()
	h.cond.Broadcast()
}

func (h *replyHold) pipe(dst, src net.Conn, reply bool) {
	defer h.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			h.mu.Lock()
			for reply && h.held && !h.done {
				h.cond.Wait()
			}
			done := h.done
			h.mu.Unlock()
			if done {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// An acquire whose transaction etcd carries out but whose answer does
// not come before its context ends (a pool master that dispatched the
// start killed meanwhile) reads the key back: the member owns the domain
// and AcquireOwner says so, with the generation. It must never leave the
// key bound to the lease unknown to the caller, who would then run
// nothing while no other member may start the domain.
func TestAcquireOwnerAnswerLost(t *testing.T) {
	c := etcdtest.Start(t, 1)
	h := newReplyHold(t, strings.TrimPrefix(c.Members[0].ClientURL(), "http://"))
	s := settings(c, 10*time.Second)
	s.Client.Endpoints = []string{h.url()}
	core, logs := observer.New(zap.WarnLevel)
	jctx, jcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer jcancel()
	m, err := Join(jctx, s, Info{Host: "host-a", Address: "host-a:8899"}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.set(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	cli := outside(t, c)
	const domain = "0004fb00-0006-0000-1234-56789abcdef1"
	wctx := ctxFor(t, time.Minute)
	wch := cli.Watch(wctx, ownerKey("test", domain))

	h.set(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		gen int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		g, err := m.AcquireOwner(ctx, domain)
		res <- result{g, err}
	}()
	var gen int64
	for gen == 0 {
		wr, ok := <-wch
		if !ok {
			t.Fatal("no owner key within a minute")
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				gen = ev.Kv.ModRevision
			}
		}
	}
	cancel() // the caller gives up; the transaction's answer is held
	var r result
	end := time.Now().Add(20 * time.Second)
wait:
	for {
		select {
		case r = <-res:
			break wait // it answered without reading the key back
		default:
		}
		if logs.FilterMessageSnippet("reading the owner key back").Len() > 0 {
			h.set(false)
			r = <-res
			break
		}
		if time.Now().After(end) {
			t.Fatal("AcquireOwner neither answered nor read the key back 20s after its context ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.set(false)
	resp, err := cli.Get(ctxFor(t, 10*time.Second), ownerKey("test", domain))
	if err != nil {
		t.Fatal(err)
	}
	bound := len(resp.Kvs) == 1 && clientv3.LeaseID(resp.Kvs[0].Lease) == m.Lease()
	switch {
	case r.err == nil && (!bound || r.gen != gen):
		t.Fatalf("AcquireOwner = %d, nil; the key bound to the lease: %v (created at %d)", r.gen, bound, gen)
	case r.err != nil && bound:
		t.Fatalf("AcquireOwner = %v, and the owner key is bound to the member's lease at generation %d: owned, unknown to the caller", r.err, gen)
	case r.err != nil:
		t.Fatalf("AcquireOwner = %v: the owner key was created at %d and is gone", r.err, gen)
	}
	if logs.FilterMessageSnippet("the acquire was carried out though its answer did not come").Len() != 1 {
		t.Errorf("no log line says the acquire was carried out after all: %v", logs.All())
	}
}
