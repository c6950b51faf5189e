// Package config owns the agent's configuration: agent.ini (defaults,
// parsing, validation with file/line/option errors), the reader for an
// existing xend-config.sxp, and (in config/vmcfg) the vm.cfg parser.
//
// It imports nothing else from this module; everything else may import it.
package config
