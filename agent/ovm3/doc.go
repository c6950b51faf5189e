// Package ovm3 holds the wire shapes of the Oracle VM Agent 3 API, the one
// Apache CloudStack's OVM3 hypervisor plugin speaks (its client classes
// com.cloud.hypervisor.ovm3.objects.*, on Apache XML-RPC 3.1 with the
// nil and i8 extensions): the XML documents some calls answer inside a
// string, the xend-style domain structs of list_vms, the vm.cfg struct of
// create_vm and get_vm_config, and the checks of the identifiers a
// caller names. It builds and checks values only; the agent declares the
// methods (agent/api_ovm3*.go) and maps them onto its own operations.
//
// It imports config/vmcfg and the standard library, nothing of agent (its
// tests also use agent/xmlrpc, to check the encoded shapes). PROTOCOL.md
// beside this file is what the project knows of the protocol.
package ovm3
