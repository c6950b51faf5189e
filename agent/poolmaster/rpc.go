package poolmaster

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/pool"
)

// ForwardedHeader marks a call one agent of the pool makes to another on
// a caller's behalf (a forwarded pool call, a dispatch): the receiving
// agent does not forward it again.
const ForwardedHeader = "X-Ovs-Pool-Forwarded"

// RPC calls other members' agents over their XML-RPC API, at the address
// in their member records, pinning the certificate fingerprint the record
// gives (HTTPS) or in plain HTTP when it gives none.
type RPC struct {
	// From is this member's host name, sent in ForwardedHeader.
	From string
	// Credentials are the user and password the pool's agents accept
	// ([relocation] peer_user and peer_password_file).
	Credentials func() (user, password string, err error)
	// Timeout bounds one call when ctx has no earlier deadline.
	Timeout time.Duration
}

// Call calls method on rec's agent.
func (r *RPC) Call(ctx context.Context, rec pool.MemberRecord, method string, reply any, args ...any) error {
	if rec.Address == "" {
		return fmt.Errorf("member %s's record has no API address (its API is not served yet, or [server] tcp_server = no there): the pool cannot call it", rec.Host)
	}
	user, pw, err := r.Credentials()
	if err != nil {
		return fmt.Errorf("credentials for calling %s: %w", rec.Host, err)
	}
	url := "http://" + rec.Address + "/RPC2"
	if rec.TLSFingerprint != "" {
		url = "https://" + rec.Address + "/RPC2"
	}
	to := r.Timeout
	if to <= 0 {
		to = time.Minute
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < to {
		to = max(time.Until(dl), time.Millisecond)
	}
	c, err := client.New(client.Options{URL: url, User: user, Password: pw, Fingerprint: rec.TLSFingerprint, Timeout: to,
		Header: http.Header{ForwardedHeader: []string{r.From}}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Call(ctx, method, reply, args...); err != nil {
		return fmt.Errorf("%s on %s (%s): %w", method, rec.Host, rec.Address, err)
	}
	return nil
}

// Start calls pool.start_local(uuid) on to's agent; the answer is the
// generation (an int, or a struct with generation).
func (r *RPC) Start(ctx context.Context, to pool.MemberRecord, uuid string) (int64, error) {
	var reply any
	if err := r.Call(ctx, to, "pool.start_local", &reply, uuid); err != nil {
		return 0, err
	}
	return generationOf(reply), nil
}

// generationOf is the generation in a pool.start_local or adopt_local
// answer: an int, or a struct with generation.
func generationOf(reply any) int64 {
	switch v := reply.(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case map[string]any:
		switch g := v["generation"].(type) {
		case int64:
			return g
		case int:
			return int64(g)
		}
	}
	return 0
}

// Adopt calls pool.adopt_local(uuid) on on's agent.
func (r *RPC) Adopt(ctx context.Context, on pool.MemberRecord, uuid string) (int64, error) {
	var reply any
	if err := r.Call(ctx, on, "pool.adopt_local", &reply, uuid); err != nil {
		return 0, err
	}
	return generationOf(reply), nil
}

// StopTimeout is the ACPI shutdown a master's stop gives a guest before
// its agent destroys it; the call's own bound (the RPC's Timeout) must
// stay above it.
const StopTimeout = 60

// Stop calls pool.stop_local(uuid, false, StopTimeout) on on's agent.
func (r *RPC) Stop(ctx context.Context, on pool.MemberRecord, uuid string) error {
	return r.Call(ctx, on, "pool.stop_local", nil, uuid, false, StopTimeout)
}
