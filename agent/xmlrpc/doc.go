// Package xmlrpc is the agent's XML-RPC server codec and dispatcher (no
// maintained Go XML-RPC server library exists).
//
// It owns: decoding methodCall and methodResponse documents under size,
// depth and element-count limits (DecodeCall, DecodeResponse); encoding
// responses, faults and calls (EncodeResponse, EncodeFault, EncodeCall);
// the fault codes table (Fault, Faultf, the const block in fault.go, the
// same table in README.md); and methods, added one way only: Server.Define
// with a Def (its name, parameters, result, help and aliases declared
// once), the server checking arity and types before Run is called (a
// BadParams fault naming the method, the parameter and the usage), Run
// reading the checked parameters through Args, system.methodSignature and
// methodHelp answering from the declaration, aliases sharing it with their
// own fault translation. The system.* introspection methods and
// system.multicall are declared like any other. Params is the decoded
// parameter list a call carries to that check. Last, the HTTP handler
// (POST only, 405, 413, faults as HTTP 200 <fault> bodies) with an audit
// hook (Server.OnCall).
//
// It must not know about domains, authentication or access rules: the
// agent declares its methods and wraps the handler (WriteFault lets a wrapper
// refuse a request with a proper fault body). It imports only the
// standard library. README.md documents the wire rules and decisions.
package xmlrpc
