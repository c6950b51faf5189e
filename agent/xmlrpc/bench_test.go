package xmlrpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// benchCall is a realistic request: a domain configuration struct with
// nested arrays, plus a few scalars, as a manager would send.
func benchCall(b *testing.B) []byte {
	b.Helper()
	disks := make([]any, 8)
	for i := range disks {
		disks[i] = map[string]any{
			"path": fmt.Sprintf("/OVS/running_pool/vm%d/System.img", i), "dev": fmt.Sprintf("xvd%c", 'a'+i),
			"mode": "w", "size": int64(20) << 30,
		}
	}
	vifs := make([]any, 4)
	for i := range vifs {
		vifs[i] = map[string]any{"mac": fmt.Sprintf("00:16:3e:00:00:%02x", i), "bridge": "xenbr0"}
	}
	cfg := map[string]any{
		"name": "vm-bench", "uuid": "6b0b9a5e-3c2f-4f1e-9d1a-2f7b1c3d4e5f", "memory": int64(4096), "maxmem": int64(8192),
		"vcpus": int64(4), "on_crash": "restart", "on_reboot": "restart", "disk": disks, "vif": vifs,
		"kernel_args": []any{"console=ttyS0", "root=/dev/xvda1", "ro"}, "created": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		"ramdisk": []byte("not really an initrd, just some bytes to base64-encode"), "weight": 1.5, "hvm": false,
	}
	var buf bytes.Buffer
	if err := EncodeCall(&buf, "domain.create", []any{cfg, "pool1", true}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkDecodeCall(b *testing.B) {
	doc := benchCall(b)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCall(bytes.NewReader(doc), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

type benchDomain struct {
	Name    string            `xmlrpc:"name"`
	ID      int               `xmlrpc:"domid"`
	UUID    string            `xmlrpc:"uuid"`
	State   string            `xmlrpc:"state"`
	Memory  uint64            `xmlrpc:"memory"`
	VCPUs   int               `xmlrpc:"vcpus"`
	CPUTime float64           `xmlrpc:"cpu_time"`
	Started time.Time         `xmlrpc:"started"`
	Disks   []string          `xmlrpc:"disks"`
	Labels  map[string]string `xmlrpc:"labels,omitempty"`
}

// BenchmarkEncodeResponse encodes a 100-domain list, as Go structs (the
// reflection path) and as maps (the fast path).
func BenchmarkEncodeResponse(b *testing.B) {
	structs := make([]benchDomain, 100)
	maps := make([]any, 100)
	for i := range structs {
		d := benchDomain{
			Name: fmt.Sprintf("vm%03d", i), ID: i + 1, UUID: fmt.Sprintf("6b0b9a5e-3c2f-4f1e-9d1a-%012d", i),
			State: "running", Memory: 4 << 30, VCPUs: 2, CPUTime: 12345.678,
			Started: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
			Disks:   []string{"/OVS/running_pool/vm/System.img", "/OVS/sharedDisk/data.img"},
			Labels:  map[string]string{"pool": "p1", "tier": "gold"},
		}
		structs[i] = d
		maps[i] = map[string]any{
			"name": d.Name, "domid": int64(d.ID), "uuid": d.UUID, "state": d.State, "memory": int64(d.Memory),
			"vcpus": int64(d.VCPUs), "cpu_time": d.CPUTime, "started": d.Started,
			"disks": []any{d.Disks[0], d.Disks[1]}, "labels": map[string]any{"pool": "p1", "tier": "gold"},
		}
	}
	for _, bc := range []struct {
		name string
		v    any
	}{{"structs", structs}, {"maps", maps}} {
		b.Run(bc.name, func(b *testing.B) {
			var cw countWriter
			if err := EncodeResponse(&cw, bc.v); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(cw.n)
			b.ReportAllocs()
			for b.Loop() {
				if err := EncodeResponse(io.Discard, bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// BenchmarkDeclaredCall measures the dispatcher: the declaration check,
// Run and the encodability check, in-process (Call) and over HTTP with
// decoding and encoding (ServeHTTP), for a method of three parameters.
func BenchmarkDeclaredCall(b *testing.B) {
	s := NewServer()
	err := s.Define(Def{Name: "vm.console", Result: Struct,
		Params: []Param{Req("name", String), Opt("offset", Int), Opt("max", Int)},
		Run: func(_ context.Context, a Args) (any, error) {
			return map[string]any{"name": a.String(0), "offset": a.IntOr(1, 0), "max": a.IntOr(2, 64)}, nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	params := Params{"vm1", int64(4096), int64(512)}
	b.Run("call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Call(context.Background(), "vm.console", params); err != nil {
				b.Fatal(err)
			}
		}
	})
	var doc bytes.Buffer
	if err := EncodeCall(&doc, "vm.console", []any(params)); err != nil {
		b.Fatal(err)
	}
	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/RPC2", bytes.NewReader(doc.Bytes())))
			if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "<fault>") {
				b.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
		}
	})
}
