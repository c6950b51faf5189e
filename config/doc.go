// Package config owns the agent's configuration: agent.ini (defaults,
// parsing, validation with file/line/option errors), the import of an
// existing xend-config.sxp, and safe editing of agent.ini for
// `ovs-agent configure` and for the development agent of `ovs-agent serve
// --run-dir` (RunDirChanges: the options DefaultForDir sets). Its subpackages own the syntaxes: config/ini
// (line-preserving INI), config/sxp (xend's S-expressions) and config/vmcfg
// (the vm.cfg parser).
//
// Load or Parse give a *Config whose every field is one agent.ini option;
// options the file does not set keep Default(). ExampleINI (the embedded
// agent.ini.example) documents every option and parses to Default().
// Errors are "file:line: [section] key: message", all of them collected in
// a *ValidationError; Where and OptionError let later checks (a
// certificate that cannot be read, a port that cannot be bound) point at
// the same place. Unknown sections and options are errors.
//
// This package checks syntax and the rules between options only. It does
// not open sockets, read certificates or match addresses: the agent
// matches [access] items (grammar in ValidateAccessItem) and hosts_allow
// patterns (CompileHostsAllow).
//
// It imports nothing else from this module but internal/atomicfile, which
// rewrites agent.ini (keeping its owner and mode) for EditFile, and
// internal/boundedfile, which reads agent.ini and xend-config.sxp (regular
// files only, never blocking, at most MaxFileSize); everything else may
// import it.
package config
