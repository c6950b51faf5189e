package xmlrpc

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
)

// callXML wraps value fragments into a methodCall document.
func callXML(method string, values ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodCall><methodName>" + method + "</methodName><params>")
	for _, v := range values {
		b.WriteString("<param>" + v + "</param>")
	}
	b.WriteString("</params></methodCall>")
	return b.String()
}

// responseXML wraps one value fragment into a methodResponse document.
func responseXML(value string) string {
	return `<?xml version="1.0"?><methodResponse><params><param>` + value + `</param></params></methodResponse>`
}

// valueEqual compares decoded values: times by instant, byte slices by
// content (nil equals empty), floats by value, containers recursively.
func valueEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valueEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !valueEqual(v, w) {
				return false
			}
		}
		return true
	case Params:
		return valueEqual([]any(x), []any(b.(Params)))
	default:
		return a == b
	}
}

// show formats a value for failure messages.
func show(v any) string { return fmt.Sprintf("%#v", v) }
