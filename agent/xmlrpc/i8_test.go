package xmlrpc

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestI8AlwaysI8: an I8 is <i8> at every size, at the top, in a struct
// field (omitempty too) and in a map, and decodes back to the same int64;
// a plain int64 that fits stays <int>.
func TestI8AlwaysI8(t *testing.T) {
	type boot struct {
		Last  I8 `xmlrpc:"last_boot_time"`
		Local I8 `xmlrpc:"local_time,omitempty"`
		Plain int64
	}
	for _, tc := range []struct {
		v    any
		want []string
	}{
		{I8(0), []string{"<i8>0</i8>"}},
		{I8(1413834408), []string{"<i8>1413834408</i8>"}},
		{I8(math.MinInt64), []string{"<i8>-9223372036854775808</i8>"}},
		{boot{Last: 5, Local: 7, Plain: 9}, []string{"<name>last_boot_time</name><value><i8>5</i8>", "<name>local_time</name><value><i8>7</i8>", "<name>Plain</name><value><int>9</int>"}},
		{map[string]any{"x": I8(3)}, []string{"<name>x</name><value><i8>3</i8>"}},
		{[]I8{1, 2}, []string{"<value><i8>1</i8></value><value><i8>2</i8></value>"}},
	} {
		var b bytes.Buffer
		if err := EncodeResponse(&b, tc.v); err != nil {
			t.Fatalf("%#v: %v", tc.v, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%#v encodes as %s, which lacks %s", tc.v, b.String(), w)
			}
		}
		if strings.Contains(b.String(), "<int>") && tc.v != any(boot{Last: 5, Local: 7, Plain: 9}) {
			t.Errorf("%#v: an <int> in %s", tc.v, b.String())
		}
	}
	// omitempty leaves a zero I8 out.
	var b bytes.Buffer
	if err := EncodeResponse(&b, boot{Last: 1}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "local_time") {
		t.Errorf("omitempty kept a zero I8: %s", b.String())
	}
}

// FuzzI8 checks that every int64 sent as I8 is one <i8> element and comes
// back unchanged.
func FuzzI8(f *testing.F) {
	for _, s := range []int64{0, 1, -1, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MaxInt64, math.MinInt64} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		var b bytes.Buffer
		if err := EncodeResponse(&b, []any{I8(n), map[string]I8{"n": I8(n)}}); err != nil {
			t.Fatal(err)
		}
		if c := strings.Count(b.String(), "<i8>"+strconv.FormatInt(n, 10)+"</i8>"); c != 2 {
			t.Fatalf("%d: %d <i8> elements in %s", n, c, b.String())
		}
		v, err := DecodeResponse(&b, fuzzLimits)
		if err != nil {
			t.Fatal(err)
		}
		got := v.([]any)
		if got[0] != n || got[1].(map[string]any)["n"] != n {
			t.Fatalf("%d came back as %#v", n, v)
		}
	})
}
