package xmlrpc

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// ContentType is the Content-Type of every XML-RPC response written here.
const ContentType = "text/xml; charset=utf-8"

// ServeHTTP implements http.Handler for XML-RPC over HTTP POST:
//
//   - a method other than POST gets 405 with "Allow: POST";
//   - a body larger than the MaxBodyBytes limit gets 413 (checked against
//     Content-Length first, then while reading);
//   - a Content-Type other than text/xml or application/xml (parameters
//     such as charset are ignored; a missing one is accepted), or a
//     Content-Encoding other than identity, gets an InvalidRequest fault;
//   - everything else is decoded, dispatched and answered with HTTP 200
//     and a methodResponse, a fault being a <fault> body as the spec says.
//
// The handler receives the request's context. Authentication and access
// control are the caller's job: wrap this handler, and use WriteFault to
// refuse a request with a fault body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("XML-RPC requests must use POST, not %s", r.Method), http.StatusMethodNotAllowed)
		return
	}
	start := time.Now()
	if f := checkHeaders(r); f != nil {
		s.report(r.Context(), CallInfo{Fault: f, Duration: time.Since(start)})
		WriteFault(w, f)
		return
	}
	limit := s.limits.MaxBodyBytes
	if r.ContentLength > limit {
		tooLarge(w, limit)
		return
	}
	var body bytes.Buffer
	if r.ContentLength > 0 {
		body.Grow(int(r.ContentLength))
	}
	if _, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge(w, limit)
			return
		}
		http.Error(w, fmt.Sprintf("reading the request body: %v", err), http.StatusBadRequest)
		return
	}

	start = time.Now()
	ctx := r.Context()
	call, name, f := decodeCall(bytes.NewReader(body.Bytes()), s.limits)
	var out []byte
	if f == nil {
		var res any
		res, f = s.invoke(ctx, call.Method, call.Params)
		if f == nil {
			var err error
			if out, err = appendResponse(body.Bytes()[:0], res); err != nil {
				f = resultFault(name, err)
			}
		}
	}
	if f != nil {
		out = appendFault(body.Bytes()[:0], f)
	}
	s.report(ctx, CallInfo{Method: name, Fault: f, Duration: time.Since(start)})
	writeXML(w, out)
}

// checkHeaders refuses content types and encodings this server cannot read.
func checkHeaders(r *http.Request) *Fault {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return Faultf(InvalidRequest, "Content-Type %q is malformed: %v; send text/xml", clip(ct), err)
		}
		if mt != "text/xml" && mt != "application/xml" {
			return Faultf(InvalidRequest, "Content-Type %q is not XML; send text/xml", clip(mt))
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return Faultf(InvalidRequest, "Content-Encoding %q is not supported; send the body uncompressed", clip(ce))
	}
	return nil
}

func tooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("XML-RPC request body is larger than the limit of %d bytes", limit), http.StatusRequestEntityTooLarge)
}

// WriteFault writes f as a complete XML-RPC fault response: HTTP 200,
// Content-Type text/xml, a correct Content-Length. Use it from a wrapping
// handler (authentication, access rules) to refuse a request in a form
// every XML-RPC client understands.
func WriteFault(w http.ResponseWriter, f *Fault) {
	if f == nil {
		f = Faultf(Internal, "internal error: WriteFault called without a fault")
	}
	writeXML(w, appendFault(nil, f))
}

func writeXML(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a client that went away cannot be told
}

var _ http.Handler = (*Server)(nil)
