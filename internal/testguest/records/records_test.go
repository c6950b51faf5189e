package records

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	bootA = "f7887c45-2592-44bf-a605-44d98f943dd7"
	bootB = "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
)

// rec is a record of domain "web" by generation g on host h in boot b.
func rec(g int64, h, b string, seq uint64) Record {
	return Record{Generation: g, Host: h, Boot: b, Sequence: seq, MonotonicNS: seq * 50e6, Domain: "web"}
}

// run is n records of one writer, seq from first on.
func run(g int64, h, b string, first uint64, n int) []Record {
	var r []Record
	for i := range n {
		r = append(r, rec(g, h, b, first+uint64(i)))
	}
	return r
}

func cat(rs ...[]Record) []Record { return slices.Concat(rs...) }

// image is the sectors of recs followed by free empty sectors.
func image(t testing.TB, recs []Record, free int) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range recs {
		s, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(s)
	}
	b.Write(make([]byte, free*SectorSize))
	return b.Bytes()
}

func TestVerifyGoodLogs(t *testing.T) {
	for name, tc := range map[string]struct {
		recs []Record
		free int
		runs []Run
	}{
		"empty":      {nil, 8, nil},
		"no sectors": {nil, 0, nil},
		"one writer": {run(1, "a", bootA, 1, 5), 3, []Run{
			{Writer: Writer{1, "a", bootA}, Domain: "web", FirstSector: 0, LastSector: 4, FirstSeq: 1, LastSeq: 5, Records: 5}}},
		"a full disk": {run(1, "a", bootA, 1, 4), 0, []Run{
			{Writer: Writer{1, "a", bootA}, Domain: "web", FirstSector: 0, LastSector: 3, FirstSeq: 1, LastSeq: 4, Records: 4}}},
		"restarted on another host": {cat(run(1, "a", bootA, 1, 3), run(2, "b", bootB, 4, 2)), 2, []Run{
			{Writer: Writer{1, "a", bootA}, Domain: "web", FirstSector: 0, LastSector: 2, FirstSeq: 1, LastSeq: 3, Records: 3},
			{Writer: Writer{2, "b", bootB}, Domain: "web", FirstSector: 3, LastSector: 4, FirstSeq: 4, LastSeq: 5, Records: 2}}},
		"rebooted in its generation": {cat(run(5, "a", bootA, 1, 2), run(5, "a", bootB, 3, 2)), 1, []Run{
			{Writer: Writer{5, "a", bootA}, Domain: "web", FirstSector: 0, LastSector: 1, FirstSeq: 1, LastSeq: 2, Records: 2},
			{Writer: Writer{5, "a", bootB}, Domain: "web", FirstSector: 2, LastSector: 3, FirstSeq: 3, LastSeq: 4, Records: 2}}},
		"back on the first host": {cat(run(1, "a", bootA, 1, 1), run(2, "b", bootB, 2, 1), run(7, "a", bootA+"x", 3, 1)), 0, []Run{
			{Writer: Writer{1, "a", bootA}, Domain: "web", FirstSector: 0, LastSector: 0, FirstSeq: 1, LastSeq: 1, Records: 1},
			{Writer: Writer{2, "b", bootB}, Domain: "web", FirstSector: 1, LastSector: 1, FirstSeq: 2, LastSeq: 2, Records: 1},
			{Writer: Writer{7, "a", bootA + "x"}, Domain: "web", FirstSector: 2, LastSector: 2, FirstSeq: 3, LastSeq: 3, Records: 1}}},
	} {
		s, err := VerifyReader(bytes.NewReader(image(t, tc.recs, tc.free)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !slices.Equal(s.Runs, tc.runs) || s.Records != len(tc.recs) || s.End != int64(len(tc.recs)) {
			t.Errorf("%s: %+v\nwant runs %+v, %d records ending at sector %d", name, s, tc.runs, len(tc.recs), len(tc.recs))
		}
	}
}

func TestVerifyFindsViolations(t *testing.T) {
	two := cat(run(1, "a", bootA, 1, 2), run(2, "b", bootB, 3, 2))
	for name, tc := range map[string]struct {
		img        []byte
		kind       error
		sector     int64
		prevSector int64 // -1: no Previous
		say        string
	}{
		"two writers interleaved": {
			image(t, cat(two, []Record{rec(3, "a", bootA+"3", 5), rec(4, "b", bootB+"4", 6), rec(3, "a", bootA+"3", 6), rec(4, "b", bootB+"4", 7)}), 1),
			ErrGeneration, 6, 5, "sector 6: generation decreased",
		},
		"an older generation after a newer one": {
			image(t, cat(run(2, "b", bootB, 1, 2), run(1, "a", bootA, 3, 1)), 1),
			ErrGeneration, 2, 1, `generation 1, host "a", seq 3`,
		},
		"two boots of one generation interleaved": {
			image(t, []Record{rec(3, "a", bootA, 1), rec(3, "a", bootB, 2), rec(3, "a", bootA, 3)}, 0),
			ErrInterleaved, 2, 1, "previous record is at sector 0",
		},
		"a generation on two hosts": {
			image(t, cat(run(3, "a", bootA, 1, 2), run(3, "b", bootB, 3, 2)), 0),
			ErrTwoHosts, 2, 0, `host "b"`,
		},
		"a writer that started before the last stopped": {
			image(t, cat(run(1, "a", bootA, 1, 3), run(2, "b", bootB, 3, 2)), 0),
			ErrSequence, 3, 2, "sequence did not increase",
		},
		"a repeated sequence": {
			image(t, []Record{rec(1, "a", bootA, 1), rec(1, "a", bootA, 2), rec(1, "a", bootA, 2)}, 0),
			ErrSequence, 2, 1, "seq 2",
		},
		"two domains": {
			image(t, []Record{rec(1, "a", bootA, 1), {Generation: 1, Host: "a", Boot: bootA, Sequence: 2, Domain: "db"}}, 0),
			ErrDomain, 1, 0, `domain "db", the log's is "web"`,
		},
		"a bad checksum": {
			func() []byte { b := image(t, two, 1); b[2*SectorSize+offHost] ^= 1; return b }(),
			ErrInvalid, 2, 1, "checksum",
		},
		"a bad version": {
			func() []byte { b := image(t, two, 1); b[offVersion] = 2; return b }(),
			ErrInvalid, 0, -1, "version 2",
		},
		"garbage": {
			append(image(t, two, 0), bytes.Repeat([]byte{0xff}, SectorSize)...),
			ErrInvalid, 4, 3, "no record magic",
		},
		"a gap": {
			append(image(t, two[:2], 2), image(t, two[2:], 0)...),
			ErrGap, 4, -1, "the log ends at sector 2",
		},
	} {
		s, err := VerifyReader(bytes.NewReader(tc.img))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", name, err, tc.kind)
			continue
		}
		if e.Sector != tc.sector || (e.Record != nil && e.Record.Sector != tc.sector) {
			t.Errorf("%s: %v: want sector %d", name, err, tc.sector)
		}
		if (tc.prevSector < 0) != (e.Previous == nil) || (e.Previous != nil && e.Previous.Sector != tc.prevSector) {
			t.Errorf("%s: %v: want the previous record at sector %d", name, err, tc.prevSector)
		}
		if !strings.Contains(err.Error(), tc.say) {
			t.Errorf("%s: %q does not say %q", name, err, tc.say)
		}
		if s.Records == 0 && tc.sector > 0 {
			t.Errorf("%s: no summary with the error: %+v", name, s)
		}
		if len(s.Violations) == 0 || s.Violations[0] != e {
			t.Errorf("%s: the summary's violations %v do not start with the error", name, s.Violations)
		}
	}
}

// TestVerifyListsViolations: two writers at once for a long stretch give
// one violation a record, bounded, and the summary shows their runs.
func TestVerifyListsViolations(t *testing.T) {
	recs := run(1, "a", bootA, 1, 2)
	for i := range 50 {
		recs = append(recs, rec(3, "a", bootA+"3", uint64(3+i)), rec(4, "b", bootB+"4", uint64(3+i)))
	}
	s, err := VerifyReader(bytes.NewReader(image(t, recs, 1)))
	if !errors.Is(err, ErrSequence) || !strings.Contains(err.Error(), "(and 98 more violations)") {
		t.Fatalf("%v: want the first violation (g4 seq 3 after g3 seq 3) and 98 more", err)
	}
	kinds := map[error]int{}
	for _, v := range s.Violations {
		kinds[v.Kind]++
	}
	if len(s.Violations) != MaxViolations || s.Dropped != 99-MaxViolations || kinds[ErrGeneration] != MaxViolations/2 {
		t.Errorf("%d violations (%v), %d dropped", len(s.Violations), kinds, s.Dropped)
	}
	if len(s.Runs) != 101 || !strings.Contains(s.String(), "101 runs") || !strings.Contains(s.String(), "85 more runs") {
		t.Errorf("%d runs: %s", len(s.Runs), s)
	}
}

func TestVerifyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, image(t, run(9, "h", bootA, 1, 3), 5), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Verify(p)
	if err != nil || s.Records != 3 || !slices.Equal(s.Generations(), []int64{9}) {
		t.Fatalf("Verify: %v, %v", s, err)
	}
	if !strings.Contains(s.String(), `generation 9 on host "h"`) {
		t.Errorf("summary %q", s)
	}
	if err := os.WriteFile(p, make([]byte, SectorSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(p); err == nil || !strings.Contains(err.Error(), "ends inside sector 1") {
		t.Errorf("an image of 513 bytes: %v", err)
	}
	if _, err := Verify(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Verify of a missing file: no error")
	}
	// A last sector that stays invalid is reported, rereads or not.
	bad := image(t, run(9, "h", bootA, 1, 3), 2)
	bad[2*SectorSize+offSeq]++
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Verify(p); !errors.Is(err, ErrInvalid) || s.Records != 2 {
		t.Errorf("a bad last record: %v, %v", s, err)
	}
	// So is a gap that stays.
	gap := image(t, run(9, "h", bootA, 1, 3), 2)
	copy(gap[4*SectorSize:], gap[2*SectorSize:3*SectorSize])
	clear(gap[2*SectorSize : 3*SectorSize])
	if err := os.WriteFile(p, gap, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Verify(p); !errors.Is(err, ErrGap) || s.Records != 2 || s.End != 2 {
		t.Errorf("a gap: %v, %v", s, err)
	}
}

// TestVerifyWhileWritten: Verify of a log that a writer appends to
// meanwhile (one 512-byte write a record, as the guest's) accepts every
// state it reads.
func TestVerifyWhileWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	recs := cat(run(1, "a", bootA, 1, 500), run(2, "b", bootB, 501, 500))
	done := make(chan error, 1)
	go func() {
		for i, r := range recs {
			b, err := Encode(r)
			if err == nil {
				_, err = f.WriteAt(b, int64(i)*SectorSize)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	reads := 0
	for writing := true; writing; reads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			writing = false
		default:
		}
		s, err := Verify(p)
		if err != nil {
			t.Fatalf("read %d, %d records: %v", reads, s.Records, err)
		}
	}
	s, err := Verify(p)
	if err != nil || s.Records != len(recs) || !slices.Equal(s.Generations(), []int64{1, 2}) {
		t.Fatalf("after %d reads: %v, %v", reads, s, err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, r := range []Record{
		{Domain: strings.Repeat("d", MaxName+1)},
		{Host: "a\x00b"},
		{Boot: strings.Repeat("b", 41)},
	} {
		if _, err := Encode(r); err == nil {
			t.Errorf("Encode(%+v): no error", r)
		}
	}
}

// FuzzVerify: any image gives a result without panicking, and a log it
// accepts keeps the promises Verify checks.
func FuzzVerify(f *testing.F) {
	f.Add(image(f, cat(run(1, "a", bootA, 1, 2), run(2, "b", bootB, 3, 2)), 1))
	f.Add(image(f, []Record{rec(3, "a", bootA, 1), rec(4, "b", bootB, 2), rec(3, "a", bootA, 3)}, 0))
	f.Add(make([]byte, 3*SectorSize))
	f.Fuzz(func(t *testing.T, img []byte) {
		s, err := VerifyReader(bytes.NewReader(img))
		if err != nil {
			return
		}
		if len(img)%SectorSize != 0 {
			t.Fatalf("accepted an image of %d bytes", len(img))
		}
		seen := map[Writer]bool{}
		for i, r := range s.Runs {
			if seen[r.Writer] {
				t.Fatalf("accepted writer %+v in two runs", r.Writer)
			}
			seen[r.Writer] = true
			if i > 0 && (r.Generation < s.Runs[i-1].Generation || r.FirstSeq <= s.Runs[i-1].LastSeq) {
				t.Fatalf("accepted run %+v after %+v", r, s.Runs[i-1])
			}
		}
	})
}

func TestEncodeDecode(t *testing.T) {
	want := Record{Sector: 3, Generation: -7, Sequence: 1 << 60, MonotonicNS: 12345, Boot: bootA, Domain: "dom,1 x", Host: strings.Repeat("h", MaxName)}
	b, err := Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != SectorSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := decode(b, 3)
	if err != nil || got != want {
		t.Fatalf("decode: %+v, %v; want %+v", got, err, want)
	}
}
