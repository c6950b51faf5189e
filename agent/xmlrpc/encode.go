package xmlrpc

import (
	"encoding"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxEncodeDepth bounds how deeply nested a value may be when encoded. It
// turns a cyclic value (a map that contains itself, a pointer loop) into an
// error instead of a stack overflow; no sane result nests this deep.
const maxEncodeDepth = 512

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// EncodeResponse writes a complete methodResponse document carrying v as
// its single parameter. The document is built in memory first, so on an
// encoding error nothing is written to w.
//
// Go values map to XML-RPC types as follows:
//
//	nil, nil pointer/interface           <nil/>
//	bool                                  <boolean> (0 or 1)
//	string, encoding.TextMarshaler        <string> (see "strings" below)
//	int, int8..int64, uint8..uint64       <int> when it fits in 32 bits, else <i8>;
//	                                      a uint64 above MaxInt64 is an error
//	I8                                    <i8> whatever its size (a client that reads
//	                                      the value as a 64-bit Long, such as Oracle VM
//	                                      Agent 3's, and fails on <int>)
//	float32, float64                      <double>, decimal notation; NaN and ±Inf are errors
//	time.Time                             <dateTime.iso8601> 20060102T15:04:05 in UTC,
//	                                      truncated to the second; year must be 0000-9999
//	[]byte (any slice of byte kind)       <base64>
//	other slices and arrays               <array>; a nil slice is an empty array
//	maps with string-kind keys            <struct>, members sorted by name; nil map is empty
//	structs                               <struct>, exported fields in declaration order,
//	                                      named by the `xmlrpc:"name"` tag or the field name;
//	                                      `xmlrpc:"-"` skips a field, `,omitempty` omits
//	                                      false, 0, "", nil, empty slices/maps and zero
//	                                      structs/times; untagged embedded structs are flattened
//
// Strings: XML 1.0 cannot carry every string. Invalid UTF-8 bytes and the
// characters XML 1.0 forbids (C0 controls other than tab, LF and CR, and
// U+FFFE/U+FFFF) are replaced by U+FFFD, so the client always receives a
// document it can parse. CR is written as &#xD; so that it survives XML
// line-end normalisation. Results that must be byte-exact belong in []byte.
//
// Channels, functions, complex numbers, maps with non-string keys and
// values nested deeper than 512 levels (e.g. cycles) are errors.
func EncodeResponse(w io.Writer, v any) error {
	e := getEncoder()
	defer putEncoder(e)
	e.buf = append(e.buf, xmlHeader...)
	e.buf = append(e.buf, "<methodResponse><params><param>"...)
	if err := e.top(v); err != nil {
		return fmt.Errorf("encode XML-RPC response: %w", err)
	}
	e.buf = append(e.buf, "</param></params></methodResponse>\n"...)
	_, err := w.Write(e.buf)
	return err
}

// EncodeFault writes a complete methodResponse document carrying f as a
// fault (a struct of faultCode and faultString, as the spec says).
func EncodeFault(w io.Writer, f *Fault) error {
	if f == nil {
		return errors.New("encode XML-RPC fault: nil *Fault")
	}
	e := getEncoder()
	defer putEncoder(e)
	e.fault(f)
	_, err := w.Write(e.buf)
	return err
}

// EncodeCall writes a complete methodCall document: the method name and
// one <param> per element of params, encoded as EncodeResponse describes.
// It is the client half of the codec, used by peer agents and by tests.
func EncodeCall(w io.Writer, method string, params []any) error {
	if err := checkMethodName(method); err != nil {
		return fmt.Errorf("encode XML-RPC call: %w", err)
	}
	e := getEncoder()
	defer putEncoder(e)
	e.buf = append(e.buf, xmlHeader...)
	e.buf = append(e.buf, "<methodCall><methodName>"...)
	e.buf = append(e.buf, method...) // checked: only [A-Za-z0-9_.:/]
	e.buf = append(e.buf, "</methodName><params>"...)
	for i, p := range params {
		e.buf = append(e.buf, "<param>"...)
		if err := e.top(p); err != nil {
			return fmt.Errorf("encode XML-RPC call %s: parameter %d: %w", method, i+1, err)
		}
		e.buf = append(e.buf, "</param>"...)
	}
	e.buf = append(e.buf, "</params></methodCall>\n"...)
	_, err := w.Write(e.buf)
	return err
}

// checkEncodable reports whether v can be encoded, with the same error
// EncodeResponse would give, without keeping the output.
func checkEncodable(v any) error {
	e := getEncoder()
	defer putEncoder(e)
	return e.top(v)
}

// appendResponse appends a methodResponse for v to buf; used by the HTTP
// server to avoid a second copy.
func appendResponse(buf []byte, v any) ([]byte, error) {
	e := encoder{buf: buf}
	e.buf = append(e.buf, xmlHeader...)
	e.buf = append(e.buf, "<methodResponse><params><param>"...)
	if err := e.top(v); err != nil {
		return buf, err
	}
	e.buf = append(e.buf, "</param></params></methodResponse>\n"...)
	return e.buf, nil
}

// appendFault appends a fault methodResponse for f to buf.
func appendFault(buf []byte, f *Fault) []byte {
	e := encoder{buf: buf}
	e.fault(f)
	return e.buf
}

type encoder struct {
	buf   []byte
	depth int
}

var encoderPool = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 1024)} }}

func getEncoder() *encoder {
	e := encoderPool.Get().(*encoder)
	e.buf = e.buf[:0]
	e.depth = 0
	return e
}

func putEncoder(e *encoder) {
	if cap(e.buf) > 1<<20 { // do not pin large buffers
		return
	}
	encoderPool.Put(e)
}

func (e *encoder) fault(f *Fault) {
	e.buf = append(e.buf, xmlHeader...)
	e.buf = append(e.buf, "<methodResponse><fault><value><struct><member><name>faultCode</name><value>"...)
	e.int(int64(f.Code))
	e.buf = append(e.buf, "</value></member><member><name>faultString</name><value><string>"...)
	e.buf = appendEscaped(e.buf, f.Message)
	e.buf = append(e.buf, "</string></value></member></struct></value></fault></methodResponse>\n"...)
}

// encodeError carries the position of the offending value inside the
// result, built while the recursion unwinds.
type encodeError struct {
	path []string // innermost first
	msg  string
}

func (e *encodeError) Error() string {
	if len(e.path) == 0 {
		return e.msg
	}
	var b strings.Builder
	b.WriteString("at ")
	for i := len(e.path) - 1; i >= 0; i-- {
		b.WriteString(e.path[i])
	}
	b.WriteString(": ")
	b.WriteString(e.msg)
	return b.String()
}

func errorf(format string, args ...any) error {
	return &encodeError{msg: fmt.Sprintf(format, args...)}
}

// at records a path segment on an error coming out of a nested value.
func at(err error, seg string) error {
	if ee, ok := err.(*encodeError); ok {
		ee.path = append(ee.path, seg)
		return ee
	}
	return err
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

func member(name string) string { return "." + name }

// top encodes a whole value, turning a panic in a MarshalText method into
// an error: a result must never take the server down.
func (e *encoder) top(v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errorf("encoding panicked: %v", r)
		}
	}()
	return e.value(v)
}

// value encodes one <value>...</value>.
func (e *encoder) value(v any) error {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxEncodeDepth {
		return errorf("value is nested more than %d levels deep (a cycle?)", maxEncodeDepth)
	}
	e.buf = append(e.buf, "<value>"...)
	if err := e.inner(v); err != nil {
		return err
	}
	e.buf = append(e.buf, "</value>"...)
	return nil
}

// inner encodes the type element of a value. The common types decoded
// params are made of, and those handlers usually return, take a fast path.
func (e *encoder) inner(v any) error {
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "<nil/>"...)
	case string:
		e.str(x)
	case bool:
		e.bool(x)
	case int:
		e.int(int64(x))
	case int64:
		e.int(x)
	case I8:
		e.i8(int64(x))
	case int32:
		e.int(int64(x))
	case uint32:
		e.int(int64(x))
	case float64:
		return e.float(x, 64)
	case time.Time:
		return e.time(x)
	case []byte:
		e.base64(x)
	case []any:
		e.buf = append(e.buf, "<array><data>"...)
		for i, el := range x {
			if err := e.value(el); err != nil {
				return at(err, index(i))
			}
		}
		e.buf = append(e.buf, "</data></array>"...)
	case map[string]any:
		keys, err := memberNames(x)
		if err != nil {
			return err
		}
		e.buf = append(e.buf, "<struct>"...)
		for _, k := range keys {
			e.memberName(k)
			if err := e.value(x[k]); err != nil {
				return at(err, member(k))
			}
			e.buf = append(e.buf, "</member>"...)
		}
		e.buf = append(e.buf, "</struct>"...)
	case []string:
		e.buf = append(e.buf, "<array><data>"...)
		for _, s := range x {
			e.buf = append(e.buf, "<value>"...)
			e.str(s)
			e.buf = append(e.buf, "</value>"...)
		}
		e.buf = append(e.buf, "</data></array>"...)
	case map[string]string:
		keys, err := memberNames(x)
		if err != nil {
			return err
		}
		e.buf = append(e.buf, "<struct>"...)
		for _, k := range keys {
			e.memberName(k)
			e.buf = append(e.buf, "<value>"...)
			e.str(x[k])
			e.buf = append(e.buf, "</value></member>"...)
		}
		e.buf = append(e.buf, "</struct>"...)
	default:
		return e.reflect(reflect.ValueOf(v))
	}
	return nil
}

// checkMemberNames refuses map keys that would reach the client as the
// same member name once characters XML cannot carry are replaced (e.g.
// "a\xff" and "a\xfe"): the struct would be ambiguous. Keys are usually
// all valid, and then this costs one scan.
func checkMemberNames(keys []string) error {
	var seen map[string]string
	for i, k := range keys {
		if validXMLString(k) {
			continue
		}
		if seen == nil {
			seen = make(map[string]string, len(keys))
			for _, k2 := range keys {
				if validXMLString(k2) {
					seen[k2] = k2
				}
			}
		}
		name := string(appendEscaped(nil, k))
		if prev, dup := seen[name]; dup {
			return errorf("map keys %q and %q both become member name %q (characters XML cannot carry are replaced)", prev, k, name)
		}
		seen[name] = keys[i]
	}
	return nil
}

func (e *encoder) memberName(k string) {
	e.buf = append(e.buf, "<member><name>"...)
	e.buf = appendEscaped(e.buf, k)
	e.buf = append(e.buf, "</name>"...)
}

func (e *encoder) str(s string) {
	e.buf = append(e.buf, "<string>"...)
	e.buf = appendEscaped(e.buf, s)
	e.buf = append(e.buf, "</string>"...)
}

func (e *encoder) bool(b bool) {
	if b {
		e.buf = append(e.buf, "<boolean>1</boolean>"...)
	} else {
		e.buf = append(e.buf, "<boolean>0</boolean>"...)
	}
}

// int writes <int> for values that fit in 32 bits (every client reads
// those) and <i8> otherwise (Python, kolo/xmlrpc and Apache's extensions
// read it).
func (e *encoder) int(i int64) {
	if i >= math.MinInt32 && i <= math.MaxInt32 {
		e.buf = append(e.buf, "<int>"...)
		e.buf = strconv.AppendInt(e.buf, i, 10)
		e.buf = append(e.buf, "</int>"...)
		return
	}
	e.i8(i)
}

// I8 is an integer always encoded as <i8>, even when it fits in 32 bits:
// for clients that read a member as a 64-bit integer and refuse <int>
// there (Apache XML-RPC with the i8 extension maps <int> to Integer, and a
// caller casting to Long fails). Decoding gives int64, as for every
// integer.
type I8 int64

func (e *encoder) i8(i int64) {
	e.buf = append(e.buf, "<i8>"...)
	e.buf = strconv.AppendInt(e.buf, i, 10)
	e.buf = append(e.buf, "</i8>"...)
}

func (e *encoder) uint(u uint64) error {
	if u > math.MaxInt64 {
		return errorf("unsigned integer %d does not fit in a signed 64-bit XML-RPC integer", u)
	}
	e.int(int64(u))
	return nil
}

// float writes decimal notation (the spec has no exponent form); bits is
// 32 for float32 so that the shortest float32 representation is used.
func (e *encoder) float(f float64, bits int) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errorf("double %v cannot be represented in XML-RPC", f)
	}
	e.buf = append(e.buf, "<double>"...)
	e.buf = strconv.AppendFloat(e.buf, f, 'f', -1, bits)
	e.buf = append(e.buf, "</double>"...)
	return nil
}

func (e *encoder) time(t time.Time) error {
	e.buf = append(e.buf, "<dateTime.iso8601>"...)
	var err error
	if e.buf, err = appendDateTime(e.buf, t); err != nil {
		return errorf("%v", err)
	}
	e.buf = append(e.buf, "</dateTime.iso8601>"...)
	return nil
}

func (e *encoder) base64(b []byte) {
	e.buf = append(e.buf, "<base64>"...)
	e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
	e.buf = append(e.buf, "</base64>"...)
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	i8Type            = reflect.TypeFor[I8]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// reflect encodes the kinds the fast path does not cover.
func (e *encoder) reflect(v reflect.Value) error {
	// Follow pointers and interfaces; each step counts towards the depth
	// limit so that a pointer cycle ends in an error.
	steps := 0
	defer func() { e.depth -= steps }()
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			break
		}
		steps++
		e.depth++
		if e.depth > maxEncodeDepth {
			return errorf("value is nested more than %d levels deep (a cycle?)", maxEncodeDepth)
		}
		v = v.Elem()
	}
	if !v.IsValid() || v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		e.buf = append(e.buf, "<nil/>"...)
		return nil
	}
	t := v.Type()
	if t == timeType {
		return e.time(v.Interface().(time.Time))
	}
	if t == i8Type {
		e.i8(v.Int())
		return nil
	}
	if m := textMarshaler(v); m != nil {
		text, err := m.MarshalText()
		if err != nil {
			return errorf("%s.MarshalText: %v", t, err)
		}
		e.buf = append(e.buf, "<string>"...)
		e.buf = appendEscaped(e.buf, string(text))
		e.buf = append(e.buf, "</string>"...)
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		e.bool(v.Bool())
	case reflect.String:
		e.str(v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return e.uint(v.Uint())
	case reflect.Float32:
		return e.float(v.Float(), 32)
	case reflect.Float64:
		return e.float(v.Float(), 64)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			e.base64(v.Bytes())
			return nil
		}
		return e.array(v)
	case reflect.Array:
		return e.array(v)
	case reflect.Map:
		return e.mapValue(v)
	case reflect.Struct:
		return e.structValue(v)
	default:
		return errorf("Go type %s cannot be encoded as an XML-RPC value", t)
	}
	return nil
}

// textMarshaler returns v as an encoding.TextMarshaler, through its
// address when only the pointer type implements it, or nil.
func textMarshaler(v reflect.Value) encoding.TextMarshaler {
	if !v.CanInterface() {
		return nil
	}
	if v.Type().Implements(textMarshalerType) {
		return v.Interface().(encoding.TextMarshaler)
	}
	if v.CanAddr() && reflect.PointerTo(v.Type()).Implements(textMarshalerType) {
		return v.Addr().Interface().(encoding.TextMarshaler)
	}
	return nil
}

func (e *encoder) reflectValue(v reflect.Value) error {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxEncodeDepth {
		return errorf("value is nested more than %d levels deep (a cycle?)", maxEncodeDepth)
	}
	e.buf = append(e.buf, "<value>"...)
	if err := e.reflect(v); err != nil {
		return err
	}
	e.buf = append(e.buf, "</value>"...)
	return nil
}

func (e *encoder) array(v reflect.Value) error {
	e.buf = append(e.buf, "<array><data>"...)
	for i := range v.Len() {
		if err := e.reflectValue(v.Index(i)); err != nil {
			return at(err, index(i))
		}
	}
	e.buf = append(e.buf, "</data></array>"...)
	return nil
}

func (e *encoder) mapValue(v reflect.Value) error {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		return errorf("map key type %s is not a string; XML-RPC struct member names are strings", t.Key())
	}
	keys := v.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.String()
	}
	if err := checkMemberNames(names); err != nil {
		return err
	}
	e.buf = append(e.buf, "<struct>"...)
	for _, k := range keys {
		e.memberName(k.String())
		if err := e.reflectValue(v.MapIndex(k)); err != nil {
			return at(err, member(k.String()))
		}
		e.buf = append(e.buf, "</member>"...)
	}
	e.buf = append(e.buf, "</struct>"...)
	return nil
}

func (e *encoder) structValue(v reflect.Value) error {
	fields, err := structFields(v.Type())
	if err != nil {
		return err
	}
	e.buf = append(e.buf, "<struct>"...)
	for _, f := range fields {
		fv, ok := fieldByIndex(v, f.index)
		if !ok {
			continue // inside a nil embedded pointer
		}
		if f.omitEmpty && isEmptyValue(fv) {
			continue
		}
		e.memberName(f.name)
		if err := e.reflectValue(fv); err != nil {
			return at(err, member(f.name))
		}
		e.buf = append(e.buf, "</member>"...)
	}
	e.buf = append(e.buf, "</struct>"...)
	return nil
}

// fieldByIndex is reflect.Value.FieldByIndex that reports a nil embedded
// pointer on the way instead of panicking.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	default:
		return v.IsZero()
	}
}

// field is one member of a Go struct as encoded.
type field struct {
	name      string
	index     []int
	omitEmpty bool
}

type fieldsResult struct {
	fields []field
	err    string // a fresh error is made per use: encodeError is mutable
}

var fieldCache sync.Map // reflect.Type -> fieldsResult

// structFields lists the members a struct type encodes to, in declaration
// order, flattening untagged embedded structs. Two members with the same
// name are an error rather than a silent choice.
func structFields(t reflect.Type) ([]field, error) {
	r, ok := fieldCache.Load(t)
	if !ok {
		var fr fieldsResult
		if msg := collectFields(t, nil, &fr.fields, 0); msg != "" {
			fr.err = msg
		} else {
			seen := make(map[string]bool, len(fr.fields))
			for _, f := range fr.fields {
				if seen[f.name] {
					fr.err = fmt.Sprintf("Go struct %s has two fields encoded as member %q", t, f.name)
					break
				}
				seen[f.name] = true
			}
		}
		r, _ = fieldCache.LoadOrStore(t, fr)
	}
	fr := r.(fieldsResult)
	if fr.err != "" {
		return nil, errorf("%s", fr.err)
	}
	return fr.fields, nil
}

func collectFields(t reflect.Type, prefix []int, out *[]field, depth int) string {
	if depth > 16 {
		return fmt.Sprintf("Go struct %s embeds structs more than 16 levels deep", t)
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("xmlrpc")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		index := append(slices.Clip(prefix), i)
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != timeType && !sf.Type.Implements(textMarshalerType) {
				if msg := collectFields(ft, index, out, depth+1); msg != "" {
					return msg
				}
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		*out = append(*out, field{name: name, index: index, omitEmpty: hasOption(opts, "omitempty")})
	}
	return ""
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// appendEscaped appends s as XML character data. See EncodeResponse for
// what happens to characters XML 1.0 cannot carry.
func appendEscaped(buf []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' {
			i++
			continue
		}
		var esc string
		width := 1
		switch {
		case c == '&':
			esc = "&amp;"
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '\r':
			esc = "&#xD;"
		case c == '\t' || c == '\n':
			i++
			continue
		case c < 0x20:
			esc = "\uFFFD"
		default:
			r, w := utf8.DecodeRuneInString(s[i:])
			width = w
			if (r == utf8.RuneError && w == 1) || r == 0xFFFE || r == 0xFFFF {
				esc = "\uFFFD"
			} else {
				i += w
				continue
			}
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		i += width
		last = i
	}
	return append(buf, s[last:]...)
}

// validXMLString reports whether s is valid UTF-8 made only of characters
// XML 1.0 allows, i.e. whether appendEscaped writes it without replacement.
func validXMLString(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && w == 1) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += w
	}
	return true
}

// memberNames returns a map's keys sorted, checked as struct member names.
func memberNames[V any](m map[string]V) ([]string, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, checkMemberNames(keys)
}
