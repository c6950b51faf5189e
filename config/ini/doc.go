// Package ini reads and edits the agent's INI configuration file while
// keeping every byte of it: comments, blank lines, spacing, line endings
// and the order of keys survive a Parse/Set/Bytes cycle, so that tools
// such as `ovs-agent configure` can change one value without rewriting
// what the operator wrote around it. Every key remembers its line so that
// later validation can point at it.
//
// The syntax is deliberately strict (a typo must be an error, never a
// silently different meaning):
//
//   - The file is UTF-8 text (an optional leading byte-order mark is kept)
//     with "\n" or "\r\n" line endings. Control characters other than tab
//     are rejected. There are no continuation lines.
//   - A line whose first non-blank character is ';' or '#' is a comment.
//     Blank lines are ignored.
//   - "[name]" starts a section. It may be followed by blanks and a ';' or
//     '#' comment. A section may be declared only once.
//   - "key = value" sets a key; blanks around '=' and around the value are
//     optional and not part of the value. "key: value" is not accepted.
//     The value is everything after the first '=' up to an inline comment:
//     a ';' that follows a space or tab ("port = 8899 ; the API port").
//     Any other ';', and every '#', is part of the value; values are
//     never unquoted or unescaped.
//   - Section and key names consist of ASCII letters, digits, '_', '-' and
//     '.'; they are case-insensitive and reported in lower case, which is
//     their canonical form.
//   - Keys before the first section header belong to the section "".
//   - A key may appear only once in a section; the error names both lines.
//
// Errors have the form "file:line: message"; Parse reports every error it
// finds (up to a limit), joined with errors.Join.
//
// This package knows nothing about which sections and keys exist; that
// belongs to package config.
package ini
