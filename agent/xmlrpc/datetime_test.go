package xmlrpc

import (
	"testing"
	"time"
)

func TestParseDateTime(t *testing.T) {
	d := func(y int, mo time.Month, day, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, day, h, mi, s, ns, time.UTC)
	}
	good := []struct {
		in   string
		want time.Time
	}{
		{"20060102T15:04:05", d(2006, 1, 2, 15, 4, 5, 0)},
		{"2006-01-02T15:04:05", d(2006, 1, 2, 15, 4, 5, 0)},
		{"20060102T150405", d(2006, 1, 2, 15, 4, 5, 0)},
		{"2006-01-02T150405", d(2006, 1, 2, 15, 4, 5, 0)},
		{"20060102T15:04:05Z", d(2006, 1, 2, 15, 4, 5, 0)},
		{"20060102T15:04:05z", d(2006, 1, 2, 15, 4, 5, 0)},
		{"2006-01-02T15:04:05+07:00", d(2006, 1, 2, 8, 4, 5, 0)},
		{"2006-01-02T15:04:05-0730", d(2006, 1, 2, 22, 34, 5, 0)},
		{"2006-01-02T15:04:05+07", d(2006, 1, 2, 8, 4, 5, 0)},
		{"2006-01-02T15:04:05.5", d(2006, 1, 2, 15, 4, 5, 500_000_000)},
		{"2006-01-02T15:04:05,123456789Z", d(2006, 1, 2, 15, 4, 5, 123_456_789)},
		{"2006-01-02T15:04:05.1234567891234", d(2006, 1, 2, 15, 4, 5, 123_456_789)},
		{"20060102T15:04:05.000001-01:00", d(2006, 1, 2, 16, 4, 5, 1000)},
		{"20240229T00:00:00", d(2024, 2, 29, 0, 0, 0, 0)},
		{"00000101T00:00:00", d(0, 1, 1, 0, 0, 0, 0)},
		{"99991231T23:59:59", d(9999, 12, 31, 23, 59, 59, 0)},
		{"20000101T00:30:00+00:30", d(1999, 12, 31, 23, 60, 0, 0)},
	}
	for _, tc := range good {
		got, err := parseDateTime(tc.in)
		if err != nil {
			t.Errorf("parseDateTime(%q): %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseDateTime(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	bad := []string{
		"", "T", "2006", "20060102", "20060102 15:04:05", "2006-0102T15:04:05", "200601-02T15:04:05",
		"20060102T15:0405", "20060102T1504:05", "20060102T15:04", "20060102T15:04:05.", "20060102T15:04:05.1234567890123456789",
		"20060102T15:04:05+", "20060102T15:04:05+7", "20060102T15:04:05+07:", "20060102T15:04:05+24:00", "20060102T15:04:05+07:60",
		"20060102T15:04:05Zjunk", "20060102T15:04:05 ", "x0060102T15:04:05", "20061302T15:04:05", "20060002T15:04:05",
		"20060100T15:04:05", "20060431T15:04:05", "20230229T00:00:00", "20060102T24:00:00", "20060102T23:60:00",
		"20060102T23:59:60", "-0010102T00:00:00", "00000101T00:00:00+01:00", "99991231T23:59:59-01:00", "２0060102T15:04:05",
	}
	for _, in := range bad {
		if got, err := parseDateTime(in); err == nil {
			t.Errorf("parseDateTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestAppendDateTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2006, 1, 2, 15, 4, 5, 999_999_999, time.UTC), "20060102T15:04:05"},
		{time.Date(2006, 1, 2, 1, 0, 0, 0, time.FixedZone("plus2", 7200)), "20060101T23:00:00"},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "99991231T23:59:59"},
		{time.Time{}, "00010101T00:00:00"},
	}
	for _, tc := range tests {
		got, err := appendDateTime(nil, tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("appendDateTime(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		back, err := parseDateTime(string(got))
		if err != nil || !back.Equal(tc.in.Truncate(time.Second)) {
			t.Errorf("parseDateTime(appendDateTime(%v)) = %v, %v", tc.in, back, err)
		}
	}
	for _, y := range []int{-1, 10000} {
		if got, err := appendDateTime(nil, time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC)); err == nil {
			t.Errorf("year %d encoded as %q", y, got)
		}
	}
}
