package xmlrpc

import (
	"fmt"
	"math"
	"time"
)

// Params are the parameters of one call, as decoded: each element is an
// int64, bool, string, float64, time.Time, []byte, []any, map[string]any
// or nil. A call carries them to the server (Call, DecodeCall), which
// checks them against the method's declaration; the method reads them
// through Args.
type Params []any

// countParams is "no parameters", "1 parameter", "3 parameters".
func countParams(n int) string {
	switch n {
	case 0:
		return "no parameters"
	case 1:
		return "1 parameter"
	}
	return fmt.Sprintf("%d parameters", n)
}

// goInt converts any Go integer type that fits in int64.
func goInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint64:
		return int64(x), x <= math.MaxInt64
	}
	return 0, false
}

// typeName names the XML-RPC type a value is sent as, for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case int64, int, int32, int16, int8, uint64, uint, uint32, uint16, uint8:
		return "int"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64, float32:
		return "double"
	case time.Time:
		return "dateTime.iso8601"
	case []byte:
		return "base64"
	case []any:
		return "array"
	case map[string]any:
		return "struct"
	}
	return fmt.Sprintf("Go %T", v)
}
