// Package layering holds the test that keeps the project's imports
// pointing one way, as DESIGN.md's "Layout and dependency direction" draws
// them: cmd → agent → relocation, repository, vmm → config, with
// relocation/pagexfer and relocation/filexfer as leaf libraries that agent
// and vmm both import, internal/* as the bottom layer anyone may import (importing only each other), and nothing
// importing cmd. The test parses the import blocks of every Go file of the
// module (test files included) and names each import that breaks the rule;
// the exceptions it allows are listed there, each with its reason.
//
// It has no code of its own and touches nothing.
package layering
