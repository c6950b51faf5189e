package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Default limits applied to every decoded document.
const (
	DefaultMaxBodyBytes = 4 << 20 // 4 MiB
	DefaultMaxDepth     = 64      // arrays/structs inside arrays/structs
	DefaultMaxElements  = 250_000 // XML elements in one document
)

// Limits bound the work and memory one document can cost. A zero or
// negative field means the default for that field.
type Limits struct {
	// MaxBodyBytes is the largest document accepted, in bytes as sent.
	// The HTTP server answers a larger request with 413.
	MaxBodyBytes int64
	// MaxDepth is how deeply arrays and structs may nest: a scalar
	// parameter is depth 0, an array of scalars depth 1.
	MaxDepth int
	// MaxElements is the largest number of XML elements in a document.
	MaxElements int
}

// DefaultLimits returns the defaults: 4 MiB, depth 64, 250000 elements.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: DefaultMaxBodyBytes, MaxDepth: DefaultMaxDepth, MaxElements: DefaultMaxElements}
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultMaxElements
	}
	return l
}

// Call is a decoded methodCall.
type Call struct {
	Method string
	Params Params
}

// ErrMalformedResponse is wrapped by every DecodeResponse error that is not
// a fault sent by the server: the response itself could not be understood.
var ErrMalformedResponse = errors.New("malformed XML-RPC response")

// DecodeCall reads one methodCall document from r, refusing one larger
// than lim.MaxBodyBytes bytes (it reads at most one byte past the limit). Parameters decode to int64 (int, i4, i8), bool,
// string, float64, time.Time (UTC), []byte, []any, map[string]any and nil.
//
// Any error is a *Fault: InvalidRequest for an empty or invalid method
// name, ParseError for everything else (malformed or oversized XML, a
// DOCTYPE, an unknown type element, a bad value), with the line number and
// the offending value in the message. See README.md for the exact rules.
func DecodeCall(r io.Reader, lim Limits) (*Call, error) {
	c, _, f := decodeCall(r, lim)
	if f != nil {
		return nil, f
	}
	return c, nil
}

// decodeCall is DecodeCall that also returns the method name when the
// failure came after it was read, for the audit hook.
func decodeCall(r io.Reader, lim Limits) (*Call, string, *Fault) {
	d := newDecoder(r, lim)
	c, err := d.call()
	if err != nil {
		return nil, d.method, d.fault(err)
	}
	return c, c.Method, nil
}

// DecodeResponse reads one methodResponse document from r. On success it
// returns the single result value (typed as for DecodeCall). When the
// document is a well-formed fault it returns (nil, *Fault) with the
// server's code and message. Any other failure wraps ErrMalformedResponse.
func DecodeResponse(r io.Reader, lim Limits) (any, error) {
	d := newDecoder(r, lim)
	v, f, err := d.response()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedResponse, d.fault(err).Message)
	}
	if f != nil {
		return nil, f
	}
	return v, nil
}

// decodeError is an error at the decoder's current input position.
type decodeError struct {
	code int
	line int
	msg  string
	eof  bool // the input ended between top-level tokens
}

func (e *decodeError) Error() string { return e.msg }

type decoder struct {
	x        *xml.Decoder
	lim      Limits
	size     *sizeLimiter
	elements int
	method   string
}

func newDecoder(r io.Reader, lim Limits) *decoder {
	lim = lim.withDefaults()
	size := &sizeLimiter{r: r, left: lim.MaxBodyBytes}
	x := xml.NewDecoder(size)
	x.Strict = true
	x.CharsetReader = charsetReader
	return &decoder{x: x, lim: lim, size: size}
}

// fault turns any decoding error into the fault the client sees.
func (d *decoder) fault(err error) *Fault {
	var de *decodeError
	if errors.As(err, &de) {
		if de.line > 0 {
			return &Fault{Code: de.code, Message: fmt.Sprintf("line %d: %s", de.line, de.msg)}
		}
		return &Fault{Code: de.code, Message: de.msg}
	}
	return &Fault{Code: ParseError, Message: err.Error()}
}

func (d *decoder) errorf(format string, args ...any) error {
	line, _ := d.x.InputPos()
	return &decodeError{code: ParseError, line: line, msg: fmt.Sprintf(format, args...)}
}

// next returns the next token that matters: comments and the XML
// declaration are skipped; DOCTYPE and other directives are refused.
func (d *decoder) next() (xml.Token, error) {
	for {
		tok, err := d.x.Token()
		if err != nil {
			return nil, d.tokenError(err)
		}
		switch t := tok.(type) {
		case xml.Comment:
			continue
		case xml.ProcInst:
			if t.Target == "xml" {
				continue
			}
			return nil, d.errorf("processing instruction <?%s?> is not allowed", clip(t.Target))
		case xml.Directive:
			return nil, d.errorf("<!%s> is not allowed: XML-RPC documents may not contain DOCTYPE or entity declarations", clip(firstWord(t)))
		case xml.StartElement:
			d.elements++
			if d.elements > d.lim.MaxElements {
				return nil, d.errorf("document has more than %d XML elements", d.lim.MaxElements)
			}
		}
		return tok, nil
	}
}

func (d *decoder) tokenError(err error) error {
	if d.size.exceeded {
		return &decodeError{code: ParseError, msg: fmt.Sprintf("document is larger than the limit of %d bytes", d.lim.MaxBodyBytes)}
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return &decodeError{code: ParseError, line: se.Line, msg: "malformed XML: " + se.Msg}
	}
	if err == io.EOF {
		line, _ := d.x.InputPos()
		return &decodeError{code: ParseError, line: line, msg: "document ended early", eof: true}
	}
	return d.errorf("%v", err)
}

// nextNonSpace returns the next token that is not whitespace-only text.
// Other text is an error: it can only appear inside values.
func (d *decoder) nextNonSpace(where string) (xml.Token, error) {
	for {
		tok, err := d.next()
		if err != nil {
			return nil, err
		}
		if cd, ok := tok.(xml.CharData); ok {
			if isSpace(cd) {
				continue
			}
			return nil, d.errorf("unexpected text %q in %s", clip(string(cd)), where)
		}
		return tok, nil
	}
}

// start reads the next element start and checks its name.
func (d *decoder) start(want, where string) error {
	tok, err := d.nextNonSpace(where)
	if err != nil {
		return err
	}
	if s, ok := tok.(xml.StartElement); ok && s.Name.Local == want {
		return nil
	}
	return d.errorf("expected <%s> in %s, found %s", want, where, describe(tok))
}

// end reads the next token and checks it closes the element.
func (d *decoder) end(want string) error {
	tok, err := d.nextNonSpace("<" + want + ">")
	if err != nil {
		return err
	}
	if e, ok := tok.(xml.EndElement); ok && e.Name.Local == want {
		return nil
	}
	return d.errorf("expected </%s>, found %s", want, describe(tok))
}

// text reads character data up to the end of the element just started.
func (d *decoder) text(elem string) (string, error) {
	var buf []byte
	for {
		tok, err := d.next()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			buf = append(buf, t...)
		case xml.EndElement:
			return string(buf), nil
		case xml.StartElement:
			return "", d.errorf("<%s> must contain only text, found <%s>", elem, t.Name.Local)
		}
	}
}

// prolog reads up to and including the root element start.
func (d *decoder) prolog(root string) error {
	first := true
	for {
		tok, err := d.next()
		if err != nil {
			if isEOFError(err) {
				return d.errorf("document is empty: expected <%s>", root)
			}
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if first {
				t = bytes.TrimPrefix(t, []byte("\uFEFF")) // a UTF-8 byte order mark
			}
			first = false
			if !isSpace(t) {
				return d.errorf("unexpected text %q before <%s>", clip(string(t)), root)
			}
		case xml.StartElement:
			if t.Name.Local != root {
				return d.errorf("root element is <%s>, expected <%s>", t.Name.Local, root)
			}
			return nil
		default:
			return d.errorf("expected <%s>, found %s", root, describe(tok))
		}
	}
}

// epilog checks nothing but whitespace and comments follows the root.
func (d *decoder) epilog(root string) error {
	for {
		tok, err := d.x.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return d.tokenError(err)
		}
		switch t := tok.(type) {
		case xml.Comment:
		case xml.CharData:
			if !isSpace(t) {
				return d.errorf("unexpected text %q after </%s>", clip(string(t)), root)
			}
		default:
			return d.errorf("unexpected %s after </%s>", describe(tok), root)
		}
	}
}

func isEOFError(err error) bool {
	var de *decodeError
	return errors.As(err, &de) && de.eof
}

func (d *decoder) call() (*Call, error) {
	if err := d.prolog("methodCall"); err != nil {
		return nil, err
	}
	if err := d.start("methodName", "<methodCall>"); err != nil {
		return nil, err
	}
	raw, err := d.text("methodName")
	if err != nil {
		return nil, err
	}
	name := strings.Trim(raw, " \t\r\n")
	if err := checkMethodName(name); err != nil {
		line, _ := d.x.InputPos()
		return nil, &decodeError{code: InvalidRequest, line: line, msg: err.Error()}
	}
	d.method = name
	c := &Call{Method: name, Params: Params{}}
	tok, err := d.nextNonSpace("<methodCall>")
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case xml.EndElement: // no <params> at all is allowed
	case xml.StartElement:
		if t.Name.Local != "params" {
			return nil, d.errorf("expected <params> or </methodCall> after <methodName>, found <%s>", t.Name.Local)
		}
		for {
			tok, err := d.nextNonSpace("<params>")
			if err != nil {
				return nil, err
			}
			if _, ok := tok.(xml.EndElement); ok {
				break
			}
			if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "param" {
				return nil, d.errorf("expected <param> in <params>, found %s", describe(tok))
			}
			v, err := d.param(len(c.Params) + 1)
			if err != nil {
				return nil, err
			}
			c.Params = append(c.Params, v)
		}
		if err := d.end("methodCall"); err != nil {
			return nil, err
		}
	}
	if err := d.epilog("methodCall"); err != nil {
		return nil, err
	}
	return c, nil
}

// param reads "<value>...</value></param>" after <param>. An empty
// <param></param> is nil: kolo/xmlrpc (our own CLI's client) sends a nil
// argument that way.
func (d *decoder) param(n int) (any, error) {
	tok, err := d.nextNonSpace(fmt.Sprintf("<param> %d", n))
	if err != nil {
		return nil, err
	}
	if _, ok := tok.(xml.EndElement); ok {
		return nil, nil
	}
	if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "value" {
		return nil, d.errorf("expected <value> in <param> %d, found %s", n, describe(tok))
	}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if err := d.end("param"); err != nil {
		return nil, err
	}
	return v, nil
}

// response decodes a methodResponse: either its single value or a fault.
func (d *decoder) response() (any, *Fault, error) {
	if err := d.prolog("methodResponse"); err != nil {
		return nil, nil, err
	}
	tok, err := d.nextNonSpace("<methodResponse>")
	if err != nil {
		return nil, nil, err
	}
	s, ok := tok.(xml.StartElement)
	if !ok {
		return nil, nil, d.errorf("expected <params> or <fault> in <methodResponse>, found %s", describe(tok))
	}
	var v any
	var f *Fault
	switch s.Name.Local {
	case "params":
		if err := d.start("param", "<params>"); err != nil {
			return nil, nil, err
		}
		if v, err = d.param(1); err != nil {
			return nil, nil, err
		}
		if err := d.end("params"); err != nil {
			return nil, nil, err
		}
	case "fault":
		if err := d.start("value", "<fault>"); err != nil {
			return nil, nil, err
		}
		fv, err := d.value(0)
		if err != nil {
			return nil, nil, err
		}
		if f, err = d.faultValue(fv); err != nil {
			return nil, nil, err
		}
		if err := d.end("fault"); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, d.errorf("expected <params> or <fault> in <methodResponse>, found <%s>", s.Name.Local)
	}
	if err := d.end("methodResponse"); err != nil {
		return nil, nil, err
	}
	if err := d.epilog("methodResponse"); err != nil {
		return nil, nil, err
	}
	return v, f, nil
}

func (d *decoder) faultValue(v any) (*Fault, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, d.errorf("<fault> value is %s, expected a struct", typeName(v))
	}
	code, ok := m["faultCode"].(int64)
	if !ok {
		return nil, d.errorf("<fault> member faultCode is %s, expected an int", typeName(m["faultCode"]))
	}
	if code < math.MinInt || code > math.MaxInt {
		return nil, d.errorf("<fault> faultCode %d is out of range", code)
	}
	msg, ok := m["faultString"].(string)
	if !ok {
		return nil, d.errorf("<fault> member faultString is %s, expected a string", typeName(m["faultString"]))
	}
	return &Fault{Code: int(code), Message: msg}, nil
}

// value decodes the content of a <value> element, whose start has been
// read, through its end. depth is the array/struct nesting level.
func (d *decoder) value(depth int) (any, error) {
	var text []byte
	for {
		tok, err := d.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			// No type element: the spec says the value is a string, taken
			// as is (an empty <value/> is "").
			return string(text), nil
		case xml.StartElement:
			if !isSpace(text) {
				return nil, d.errorf("<value> has both text %q and a <%s> element", clip(string(text)), t.Name.Local)
			}
			v, err := d.typed(t.Name.Local, depth)
			if err != nil {
				return nil, err
			}
			if err := d.end("value"); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
}

// typed decodes one type element whose start has been read.
func (d *decoder) typed(elem string, depth int) (any, error) {
	switch elem {
	case "struct", "array":
		if depth+1 > d.lim.MaxDepth {
			return nil, d.errorf("arrays and structs are nested more than %d levels deep", d.lim.MaxDepth)
		}
		if elem == "struct" {
			return d.structValue(depth + 1)
		}
		return d.arrayValue(depth + 1)
	case "int", "i4", "i8", "boolean", "string", "double", "dateTime.iso8601", "base64", "nil":
	default:
		return nil, d.errorf("unknown type element <%s> in <value>", clip(elem))
	}
	s, err := d.text(elem)
	if err != nil {
		return nil, err
	}
	switch elem {
	case "string":
		return s, nil
	case "int", "i4", "i8":
		t := trimSpace(s)
		if t == "" {
			return nil, d.errorf("<%s> is empty, expected an integer", elem)
		}
		i, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, d.errorf("<%s> value %q is out of range for a 64-bit integer", elem, clip(s))
			}
			return nil, d.errorf("<%s> value %q is not an integer", elem, clip(s))
		}
		return i, nil
	case "boolean":
		switch trimSpace(s) {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
		return nil, d.errorf("<boolean> value %q is not 0 or 1", clip(s))
	case "double":
		t := trimSpace(s)
		if !isDecimal(t) {
			return nil, d.errorf("<double> value %q is not a decimal number", clip(s))
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, d.errorf("<double> value %q is out of range for a 64-bit float", clip(s))
		}
		return f, nil
	case "dateTime.iso8601":
		t, err := parseDateTime(trimSpace(s))
		if err != nil {
			if err == errBadDateTime {
				return nil, d.errorf("<dateTime.iso8601> value %q is not a date-time (expected 20060102T15:04:05, optionally with dashes, fractional seconds and Z or a ±hh:mm offset)", clip(s))
			}
			return nil, d.errorf("<dateTime.iso8601> value %q: %v", clip(s), err)
		}
		return t, nil
	case "base64":
		b, err := decodeBase64(s)
		if err != nil {
			return nil, d.errorf("<base64> value is not valid base64: %v", err)
		}
		return b, nil
	default: // "nil"
		if !isSpace([]byte(s)) {
			return nil, d.errorf("<nil> must be empty, found %q", clip(s))
		}
		return nil, nil
	}
}

func (d *decoder) structValue(depth int) (map[string]any, error) {
	m := map[string]any{}
	for {
		tok, err := d.nextNonSpace("<struct>")
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return m, nil
		case xml.StartElement:
			if t.Name.Local != "member" {
				return nil, d.errorf("expected <member> in <struct>, found <%s>", t.Name.Local)
			}
		}
		if err := d.start("name", "<member>"); err != nil {
			return nil, err
		}
		name, err := d.text("name")
		if err != nil {
			return nil, err
		}
		if _, dup := m[name]; dup {
			return nil, d.errorf("<struct> has member %q twice", clip(name))
		}
		if err := d.start("value", fmt.Sprintf("<member> %q", clip(name))); err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		if err := d.end("member"); err != nil {
			return nil, err
		}
		m[name] = v
	}
}

func (d *decoder) arrayValue(depth int) ([]any, error) {
	if err := d.start("data", "<array>"); err != nil {
		return nil, err
	}
	a := []any{}
	for {
		tok, err := d.nextNonSpace("<data>")
		if err != nil {
			return nil, err
		}
		if _, ok := tok.(xml.EndElement); ok {
			break
		}
		if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "value" {
			return nil, d.errorf("expected <value> in <data>, found %s", describe(tok))
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	if err := d.end("array"); err != nil {
		return nil, err
	}
	return a, nil
}

// decodeBase64 accepts standard base64 with or without padding, ignoring
// whitespace (Python's client breaks lines every 76 characters).
func decodeBase64(s string) ([]byte, error) {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	out := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Strict().Decode(out, clean)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// isDecimal checks the shape of a double: an optional sign, digits with
// an optional fraction (or a fraction alone), an optional exponent. It
// rejects what strconv would also take but XML-RPC peers do not send:
// "inf", "nan", hex floats, underscores.
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// methodNameChars is the spec's set: A-Z, a-z, 0-9, underscore, dot,
// colon and slash.
func checkMethodName(name string) error {
	if name == "" {
		return errors.New("method name is empty")
	}
	if len(name) > 256 {
		return fmt.Errorf("method name %q... is longer than 256 characters", name[:32])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '/') {
			return fmt.Errorf("method name %q contains %q; only letters, digits, '_', '.', ':' and '/' are allowed", clip(name), clip(string(rune(name[i]))))
		}
	}
	return nil
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func trimSpace(s string) string { return strings.Trim(s, " \t\r\n") }

// clip shortens s for an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func firstWord(b []byte) string {
	s := string(b)
	if i := strings.IndexAny(s, " \t\r\n["); i >= 0 {
		s = s[:i]
	}
	return s
}

func describe(tok xml.Token) string {
	switch t := tok.(type) {
	case xml.StartElement:
		return "<" + clip(t.Name.Local) + ">"
	case xml.EndElement:
		return "</" + clip(t.Name.Local) + ">"
	case xml.CharData:
		return fmt.Sprintf("text %q", clip(string(t)))
	default:
		return fmt.Sprintf("%T", tok)
	}
}

// sizeLimiter returns an error once more than left bytes were asked for.
type sizeLimiter struct {
	r        io.Reader
	left     int64
	exceeded bool
}

var errTooLarge = errors.New("document too large")

func (s *sizeLimiter) Read(p []byte) (int, error) {
	if s.left <= 0 {
		// Probe for one more byte: exactly at the limit is fine.
		var one [1]byte
		n, err := s.r.Read(one[:])
		if n > 0 {
			s.exceeded = true
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}

// charsetReader lets documents declare the two legacy encodings some
// clients still use (PHP's defaults to ISO-8859-1); UTF-8 needs none.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		return &latin1Reader{r: input}, nil
	case "us-ascii", "ascii":
		return &asciiReader{r: input}, nil
	}
	return nil, fmt.Errorf("encoding %q is not supported (use UTF-8)", clip(label))
}

// latin1Reader converts ISO-8859-1 bytes to UTF-8.
type latin1Reader struct {
	r       io.Reader
	pending []byte // converted bytes not yet returned; aliases out
	out     []byte
	in      [512]byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	if len(l.pending) == 0 {
		n, err := l.r.Read(l.in[:])
		if n == 0 {
			return 0, err
		}
		l.out = l.out[:0]
		for _, c := range l.in[:n] {
			l.out = utf8.AppendRune(l.out, rune(c))
		}
		l.pending = l.out
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// asciiReader passes 7-bit bytes through and fails on any other.
type asciiReader struct{ r io.Reader }

func (a *asciiReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	for _, c := range p[:n] {
		if c >= 0x80 {
			return 0, fmt.Errorf("byte 0x%02x in a document declared US-ASCII", c)
		}
	}
	return n, err
}
