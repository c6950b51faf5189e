package etcdtest

import (
	"context"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func client(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestSingleMember(t *testing.T) {
	c := Start(t, 1)
	cli := client(t, c.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	l, err := c.Leader(10 * time.Second)
	if err != nil || l != c.Members[0] {
		t.Fatalf("Leader = %v, %v; want the only member", l, err)
	}
	pid := c.Members[0].Pid()
	c.stopAll()
	// Stopped by pid: the process is gone.
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("etcd pid %d still exists after cleanup (kill 0: %v)", pid, err)
	}
}

// Killing the leader of three elects another; the cluster keeps serving
// on the other two; the killed member restarts on its data and catches up.
func TestKillLeaderRestart(t *testing.T) {
	c := Start(t, 3)
	cli := client(t, c.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	old, err := c.Leader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pid := old.Pid()
	old.Kill()
	if old.Running() || syscall.Kill(pid, 0) != syscall.ESRCH {
		t.Fatalf("member %s (pid %d) still runs after Kill", old.Name, pid)
	}
	nl, err := c.Leader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if nl == old {
		t.Fatalf("leader is still the killed member %s", old.Name)
	}
	if _, err := cli.Put(ctx, "during", "2"); err != nil {
		t.Fatalf("put with one of three members dead: %v", err)
	}
	old.Restart()
	// The restarted member alone has both keys.
	one := client(t, []string{old.ClientURL()})
	for _, k := range []string{"before", "during"} {
		resp, err := one.Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 {
			t.Errorf("restarted member: get %s = %v, %v", k, resp, err)
		}
	}
}

// A stopped member does not answer; continued, it does again.
func TestStopContinue(t *testing.T) {
	c := Start(t, 3)
	m := c.Members[1]
	m.Stop()
	st := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := m.status(ctx)
		st <- err
	}()
	if err := <-st; err == nil {
		t.Fatal("a SIGSTOPped member answered a status request")
	}
	m.Continue()
	if err := c.WaitHealthy(StartTimeout); err != nil {
		t.Fatal(err)
	}
}

// A TLS cluster with authentication refuses a client without its
// certificate, then one without the password, and serves one with both.
func TestTLSAndAuth(t *testing.T) {
	c := StartWith(t, 1, Options{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	try := func(cfg clientv3.Config) error {
		cfg.DialTimeout = time.Second
		cli, err := clientv3.New(cfg)
		if err != nil {
			return err
		}
		defer cli.Close()
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err = cli.Put(pctx, "k", "v")
		return err
	}
	good := c.ClientConfig()
	if err := try(good); err != nil {
		t.Fatalf("client with the cluster's pair: %v", err)
	}
	noCert := c.ClientConfig()
	noCert.TLS = noCert.TLS.Clone()
	noCert.TLS.Certificates = nil
	if err := try(noCert); err == nil {
		t.Error("a client without a certificate was served")
	}
	c.EnableAuth("s3cret")
	noPass := good // the configuration from before EnableAuth
	if err := try(noPass); err == nil {
		t.Error("a client without credentials was served after EnableAuth")
	}
	if err := try(c.ClientConfig()); err != nil {
		t.Errorf("client with root's credentials: %v", err)
	}
	if err := c.WaitHealthy(StartTimeout); err != nil {
		t.Errorf("health check with authentication on: %v", err)
	}
}
