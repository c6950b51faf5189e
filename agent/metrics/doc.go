// Package metrics is the agent's Prometheus exposition ([metrics] in
// agent.ini, off by default): the metric families, their help texts and
// units, and the HTTP handler that serves them in Prometheus' text format.
//
// It owns the names (ovs_ prefix; units in the names: _seconds, _bytes;
// counters end in _total) and keeps every label set bounded: API methods
// are the agent's registered names (anything else counts as "unknown"),
// results are ok or fault, migration outcomes are the final phases, states
// the domain and repository states; per-domain and per-repository series
// are as many as the host has domains and repositories.
//
// It does not reach into the agent: events are counted through the
// methods the agent calls (APICall, LoginFailed, RelocationRefused,
// MigrationEnded), and what is read at scrape time comes through the
// Source the agent hands to New. It does not check who may scrape: the
// agent's handler applies its access rules and optional password before
// calling Handler.
package metrics
