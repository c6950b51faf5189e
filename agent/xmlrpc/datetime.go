package xmlrpc

import (
	"errors"
	"fmt"
	"time"
)

// wireDateTime is the layout written for dateTime.iso8601 values. It is the
// one every client parses (Python's xmlrpc.client accepts only this one);
// the value is in UTC, as is common practice, since the format has no zone.
const wireDateTime = "20060102T15:04:05"

// appendDateTime appends t in the wire layout, converted to UTC and
// truncated to whole seconds. Years outside 0000-9999 cannot be written in
// four digits and are an error.
func appendDateTime(buf []byte, t time.Time) ([]byte, error) {
	u := t.UTC()
	if y := u.Year(); y < 0 || y > 9999 {
		return buf, fmt.Errorf("time %s: year %d cannot be written as dateTime.iso8601 (0000-9999)", t.Format(time.RFC3339), y)
	}
	return u.AppendFormat(buf, wireDateTime), nil
}

// errBadDateTime is the reason given for any syntax problem; the caller
// adds the value and the accepted forms.
var errBadDateTime = errors.New("not a date-time")

// parseDateTime parses the dateTime.iso8601 variants clients send:
//
//	20060102T15:04:05            the spec's form (UTC assumed)
//	2006-01-02T15:04:05          with dashes
//	20060102T150405              basic time without colons
//	...T15:04:05.123456          fractional seconds (',' also accepted)
//	...Z, ...+02:00, ...+0200, ...-07   a zone; the result is converted to UTC
//
// A value without a zone is taken as UTC. The result is always in UTC.
// Calendar fields are range-checked (no February 30, no 24:00, no leap
// second) and the UTC result must have a four-digit year.
func parseDateTime(s string) (time.Time, error) {
	p := dtParser{s: s, ok: true}
	year := p.digits(4)
	dashes := p.optional('-')
	month := p.digits(2)
	if dashes {
		p.expect('-')
	}
	day := p.digits(2)
	if !p.expect('T') {
		return time.Time{}, errBadDateTime
	}
	hour := p.digits(2)
	colons := p.optional(':')
	minute := p.digits(2)
	if colons {
		p.expect(':')
	}
	sec := p.digits(2)
	nsec := 0
	if p.optional('.') || p.optional(',') {
		n := 0
		scale := 100000000
		for p.ok && p.i < len(p.s) && isDigit(p.s[p.i]) {
			if n < 9 {
				nsec += int(p.s[p.i]-'0') * scale
				scale /= 10
			}
			n++
			p.i++
		}
		if n == 0 || n > 18 {
			return time.Time{}, errBadDateTime
		}
	}
	offset := 0
	if p.ok && p.i < len(p.s) {
		switch c := p.s[p.i]; c {
		case 'Z', 'z':
			p.i++
		case '+', '-':
			p.i++
			oh := p.digits(2)
			om := 0
			if p.ok && p.i < len(p.s) {
				p.optional(':')
				om = p.digits(2)
			}
			if oh > 23 || om > 59 {
				return time.Time{}, errBadDateTime
			}
			offset = oh*3600 + om*60
			if c == '-' {
				offset = -offset
			}
		default:
			p.ok = false
		}
	}
	if !p.ok || p.i != len(p.s) {
		return time.Time{}, errBadDateTime
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errors.New("date or time field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("day %d does not exist in %04d-%02d", day, year, month)
	}
	t = t.Add(-time.Duration(offset) * time.Second)
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("year %d in UTC is outside 0000-9999", y)
	}
	return t, nil
}

// dtParser is a tiny cursor over a date-time string; after the first
// failure ok stays false and every read returns zero.
type dtParser struct {
	s  string
	i  int
	ok bool
}

func (p *dtParser) digits(n int) int {
	if !p.ok || p.i+n > len(p.s) {
		p.ok = false
		return 0
	}
	v := 0
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if !isDigit(c) {
			p.ok = false
			return 0
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v
}

func (p *dtParser) optional(c byte) bool {
	if p.ok && p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *dtParser) expect(c byte) bool {
	if p.optional(c) {
		return true
	}
	p.ok = false
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
