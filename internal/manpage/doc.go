// Package manpage writes the project's manual pages: the pages of a cobra
// command tree (github.com/spf13/cobra/doc, one page per command, named as
// cobra names them: ovm-migrate.1) with sections of the command's own
// added to the first page (exit status, files, environment), a page for a
// program whose flags are not cobra's (ovs-vmm), and a configuration file's
// reference page rendered from its annotated example (agent.ini(5) from
// config/agent.ini.example: the example is the one source of the options,
// their defaults and their documentation).
//
// It owns the roff it writes and nothing else: the commands, their exit
// codes and the example file belong to cmd/* and config, which hand them
// in. It imports nothing of the project (it is below everything, as
// internal/* are); make deb compresses and installs what it writes.
// Tree.Write adds cobra's help and completion commands to the tree it is
// given, as Execute would: it is meant for the hidden gen-man commands,
// which write the pages and end. Warnings runs groff over a page for the
// tests (groff-base is installed by .ci/run).
package manpage
