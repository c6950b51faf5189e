package xmlrpc

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParamsCount(t *testing.T) {
	p := Params{"a", int64(1)}
	if p.Len() != 2 {
		t.Errorf("Len = %d", p.Len())
	}
	tests := []struct {
		err  error
		want string // "" for success
	}{
		{p.Want(2), ""},
		{p.Want(1), "expected 1 parameter, got 2"},
		{p.Want(3), "expected 3 parameters, got 2"},
		{p.Want(0), "expected no parameters, got 2"},
		{Params{}.Want(0), ""},
		{p.Between(1, 2), ""},
		{p.Between(2, 5), ""},
		{p.Between(3, 4), "expected 3 to 4 parameters, got 2"},
		{p.Between(0, 1), "expected 0 to 1 parameters, got 2"},
		{p.Between(1, 1), "expected 1 parameter, got 2"},
	}
	for i, tc := range tests {
		checkParamErr(t, i, tc.err, tc.want)
	}
}

func checkParamErr(t *testing.T, i int, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("case %d: unexpected error %v", i, err)
		}
		return
	}
	var f *Fault
	if !errors.As(err, &f) {
		t.Errorf("case %d: error %v is not a *Fault", i, err)
		return
	}
	if f.Code != BadParams || f.Message != want {
		t.Errorf("case %d: got %v, want BadParams %q", i, f, want)
	}
}

func TestParamsAccessors(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	p := Params{"s", int64(-3), true, 2.5, now, []byte("b"), []any{"x"}, map[string]any{"k": "v"}, nil, int(7), uint64(math.MaxUint64)}

	if v, err := p.String(0); v != "s" || err != nil {
		t.Errorf("String(0) = %q, %v", v, err)
	}
	if v, err := p.Int(1); v != -3 || err != nil {
		t.Errorf("Int(1) = %d, %v", v, err)
	}
	if v, err := p.Int(9); v != 7 || err != nil {
		t.Errorf("Int(9) of a Go int = %d, %v", v, err)
	}
	if v, err := p.Bool(2); !v || err != nil {
		t.Errorf("Bool(2) = %v, %v", v, err)
	}
	if v, err := p.Float(3); v != 2.5 || err != nil {
		t.Errorf("Float(3) = %v, %v", v, err)
	}
	if v, err := p.Float(1); v != -3 || err != nil {
		t.Errorf("Float(1) of an int = %v, %v", v, err)
	}
	if v, err := p.Time(4); !v.Equal(now) || err != nil {
		t.Errorf("Time(4) = %v, %v", v, err)
	}
	if v, err := p.Bytes(5); string(v) != "b" || err != nil {
		t.Errorf("Bytes(5) = %q, %v", v, err)
	}
	if v, err := p.Array(6); len(v) != 1 || err != nil {
		t.Errorf("Array(6) = %v, %v", v, err)
	}
	if v, err := p.Struct(7); v["k"] != "v" || err != nil {
		t.Errorf("Struct(7) = %v, %v", v, err)
	}
	if v, err := p.Any(8); v != nil || err != nil {
		t.Errorf("Any(8) = %v, %v", v, err)
	}

	errs := []struct {
		err  error
		want string
	}{
		{second(p.String(1)), "parameter 2 must be a string, got int"},
		{second(p.Int(0)), "parameter 1 must be an int, got string"},
		{second(p.Int(3)), "parameter 4 must be an int, got double"},
		{second(p.Int(10)), "parameter 11 must be an int, got int"},
		{second(p.Bool(1)), "parameter 2 must be a boolean, got int"},
		{second(p.Float(0)), "parameter 1 must be a double, got string"},
		{second(p.Time(0)), "parameter 1 must be a dateTime.iso8601, got string"},
		{second(p.Bytes(0)), "parameter 1 must be base64, got string"},
		{second(p.Array(7)), "parameter 8 must be an array, got struct"},
		{second(p.Struct(6)), "parameter 7 must be a struct, got array"},
		{second(p.Struct(8)), "parameter 9 must be a struct, got nil"},
		{second(p.String(4)), "parameter 5 must be a string, got dateTime.iso8601"},
		{second(p.String(5)), "parameter 6 must be a string, got base64"},
		{second(p.String(11)), "parameter 12 is missing, expected a string (got 11 parameters)"},
		{second(p.Int(-1)), "parameter 0 is missing, expected an int (got 11 parameters)"},
		{second(p.Any(20)), "parameter 21 is missing (got 11 parameters)"},
		{second(Params{struct{}{}}.String(0)), "parameter 1 must be a string, got Go struct {}"},
	}
	for i, tc := range errs {
		checkParamErr(t, i, tc.err, tc.want)
	}
}

func second[T any](_ T, err error) error { return err }

func TestParamsOptional(t *testing.T) {
	p := Params{"x", nil, int64(3)}
	if v, err := p.OptString(0, "d"); v != "x" || err != nil {
		t.Errorf("OptString(0) = %q, %v", v, err)
	}
	if v, err := p.OptString(1, "d"); v != "d" || err != nil {
		t.Errorf("OptString(nil) = %q, %v", v, err)
	}
	if v, err := p.OptString(5, "d"); v != "d" || err != nil {
		t.Errorf("OptString(absent) = %q, %v", v, err)
	}
	if _, err := p.OptString(2, "d"); err == nil {
		t.Error("OptString of an int succeeded")
	}
	if v, err := p.OptInt(2, 9); v != 3 || err != nil {
		t.Errorf("OptInt(2) = %d, %v", v, err)
	}
	if v, err := p.OptInt(3, 9); v != 9 || err != nil {
		t.Errorf("OptInt(absent) = %d, %v", v, err)
	}
	if _, err := p.OptInt(0, 9); err == nil {
		t.Error("OptInt of a string succeeded")
	}
	if v, err := p.OptBool(1, true); !v || err != nil {
		t.Errorf("OptBool(nil) = %v, %v", v, err)
	}
	if _, err := p.OptBool(0, true); err == nil {
		t.Error("OptBool of a string succeeded")
	}
	def := map[string]any{"d": true}
	if v, err := p.OptStruct(4, def); v["d"] != true || err != nil {
		t.Errorf("OptStruct(absent) = %v, %v", v, err)
	}
	if _, err := p.OptStruct(0, def); err == nil {
		t.Error("OptStruct of a string succeeded")
	}
}
