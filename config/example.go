package config

import _ "embed"

// ExampleINI is agent.ini.example: every option with its documentation,
// set to its default. Parse("agent.ini", ExampleINI) gives Default().
//
//go:embed agent.ini.example
var ExampleINI []byte
