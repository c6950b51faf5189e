// Package sxp reads xend's configuration format, the S-expressions of
// /etc/xen/xend-config.sxp, so that an existing xend setup can be imported.
// It owns only the syntax; which options mean what belongs to package
// config.
//
// The syntax follows xend's own reader (tools/python/xen/xend/sxp.py):
//
//   - Blanks are space, tab, newline, vertical tab, form feed and carriage
//     return. '#' starts a comment that runs to the end of the line, also
//     inside a list and right after an atom.
//   - '(' ... ')' is a list; lists nest and may span lines.
//   - A string is quoted with " or ' and may span lines. A backslash
//     escapes: \a \b \t \n \v \f \r \\ \' \" as in C, \xH or \xHH (one or
//     two hex digits) and \O, \OO or \OOO (octal, at most 0377) give that
//     byte.
//   - Anything else that starts with a printable ASCII character is an
//     atom (a bare symbol or number), ended by a blank, '#', one of the
//     separators ( ) { } < > [ ] ! ; or the end of input. As in xend a
//     separator other than '(' and ')' may begin an atom ("}" alone is an
//     atom) and quotes inside an atom are ordinary characters.
//
// Where xend's reader is broken this one does what xend's code evidently
// meant, and says so: an unknown escape such as "\." keeps both characters
// (xend dropped the character after the backslash, so '^.*\.example\.org$'
// silently became '^.*\example\org$'); hex digits A-F count as 10-15 (xend
// counted them from 0); "\x" with no hex digit, and a control or non-ASCII
// character where a value should start (including xend's ^D end-of-text),
// are errors rather than a crash or silent truncation.
//
// Every top-level value must be a form "(name value...)" whose name is an
// atom or string; Parse returns them as Entries in file order with their
// lines. Errors are "file:line: message". Input is limited in size, nesting
// depth and number of values.
package sxp
