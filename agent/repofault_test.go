package agent

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/repository"
)

// repository.add's errors get their own codes at the API edge; the
// repository's sentence is kept.
func TestAddFaultCodes(t *testing.T) {
	state := func(err error) error { return xmlrpc.Faultf(xmlrpc.BadState, "%v", err) }
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("add repository: %w", fmt.Errorf("empty source: %w", repository.ErrBadInput)), xmlrpc.BadParams},
		{fmt.Errorf("add repository: /x is not a repository: %w", repository.ErrNotRepository), xmlrpc.InvalidConfig},
		{fmt.Errorf("add repository: %w", repository.ErrConfigured), xmlrpc.Exists},
		{errors.New("add repository: mount: busy"), xmlrpc.BadState},
	} {
		f := xmlrpc.AsFault(addFault(tc.err, state))
		if f.Code != tc.code || f.Message != tc.err.Error() {
			t.Errorf("%v: fault %d %q, want %d with the same sentence", tc.err, f.Code, f.Message, tc.code)
		}
	}
	if addFault(nil, state) != nil {
		t.Error("nil error made a fault")
	}
}
