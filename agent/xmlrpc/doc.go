// Package xmlrpc is the agent's XML-RPC server codec and dispatcher (no
// maintained Go XML-RPC server library exists).
//
// It owns: decoding methodCall and methodResponse documents under size,
// depth and element-count limits (DecodeCall, DecodeResponse); encoding
// responses, faults and calls (EncodeResponse, EncodeFault, EncodeCall);
// the fault codes table (Fault, Faultf, the const block in fault.go, the
// same table in README.md); declared methods (Server.Define, Def, Param,
// Alias): each method's name, parameters, result and help declared once,
// arity and types checked before it runs (a BadParams fault naming the
// method, the parameter and the usage), its handler reading the checked
// parameters through Args, system.methodSignature and methodHelp answering
// from the declaration, aliases sharing it with their own fault
// translation; self-checking methods (Server.Register, Method, Params);
// the system.* introspection methods and system.multicall, declared like
// any other; and the HTTP handler (POST only, 405, 413, faults as HTTP 200
// <fault> bodies) with an audit hook (Server.OnCall).
//
// It must not know about domains, authentication or access rules: the
// agent declares its methods and wraps the handler (WriteFault lets a wrapper
// refuse a request with a proper fault body). It imports only the
// standard library. README.md documents the wire rules and decisions.
package xmlrpc
