package control

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestLateAnswerSkipped: a call that gave up waiting leaves its answer on
// the connection; the next call gets its own answer, not that one.
func TestLateAnswerSkipped(t *testing.T) {
	path := serveTest(t, func(req Request, files []*os.File) Response {
		if req.Op == OpInfo {
			time.Sleep(300 * time.Millisecond)
			return Response{Info: &Info{Name: "slow"}}
		}
		return Response{Console: &Console{Data: req.Op}}
	})
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = c.Call(ctx, Request{Op: OpInfo})
	cancel()
	if err == nil {
		t.Fatal("the slow call did not time out")
	}
	for _, op := range []string{OpConsole, OpEstimate} {
		resp, err := c.Call(context.Background(), Request{Op: op})
		if err != nil || resp.Info != nil || resp.Console == nil || resp.Console.Data != op {
			t.Fatalf("%s after a timed-out call: %+v, %v", op, resp, err)
		}
	}
}
