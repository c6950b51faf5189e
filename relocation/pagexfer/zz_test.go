package pagexfer

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func FuzzZZRecv(f *testing.F) {
	f.Add(newStream(testHeader()).start(0, roundFinal).batch(run{5, 3, kindZero}, run{8, 1, kindRaw}).end(0).state("").fin())
	f.Fuzz(func(t *testing.T, b []byte) {
		receive(context.Background(), bytes.NewReader(b), func(h Header) (Sink, error) {
			if h.MemSize > 64<<20 {
				return nil, errors.New("too large")
			}
			return &sparseSink{size: h.MemSize, ps: uint64(h.PageSize), pages: map[uint64][]byte{}}, nil
		}, false)
	})
}
