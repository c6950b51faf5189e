// Package restarts is the restart budget of a domain whose vm.cfg asks to
// be restarted when it crashes or powers off (on_crash, on_poweroff =
// restart): at most Max automatic restarts within Window. It decides from
// the times of the earlier restarts, which the caller persists (the
// registry keeps them in domain.json), and from the time it is handed, so
// that a test chooses the clock.
//
// It knows nothing of domains, processes or files; it starts nothing. The
// registry (agent/domains) asks it before each automatic restart.
package restarts
