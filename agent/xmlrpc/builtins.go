package xmlrpc

import "fmt"

// builtins declares the system.* introspection methods and system.multicall.
func (s *Server) builtins() []Def {
	method := []Param{Req("name", String)}
	return []Def{
		{Name: "system.listMethods", Result: Array, Run: s.listMethods,
			Help: "Returns an array of the names of all methods this server implements, sorted."},
		{Name: "system.methodHelp", Params: method, Result: String, Run: s.methodHelp,
			Help: "Takes a method name and returns its documentation string."},
		{Name: "system.methodSignature", Params: method, Result: Array, Run: s.methodSignature,
			Help: "Takes a method name and returns an array of its signatures, each an array of type names " +
				"(result type first): one for each number of parameters it accepts and each choice of their types."},
		{Name: "system.multicall", Params: []Param{Req("calls", Array)}, Result: Array, Run: s.multicall,
			Help: fmt.Sprintf("Takes an array of structs {methodName, params} and runs each call in order. "+
				"Returns an array with, for each call, a one-element array holding its result or a struct "+
				"{faultCode, faultString}. At most %d calls; system.multicall cannot be nested.", s.maxMulticall)},
	}
}
