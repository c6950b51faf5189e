// Package cssetup is what Apache CloudStack's OVM3 plugin finds when it
// logs in to a host over ssh to add it: an sshd ForceCommand
// (`ovs-agent cloudstack-ssh`) for the management server's login, in place
// of the Oracle VM Server shell the plugin expects. The plugin copies its
// Python module (cloudstack.py; newer plugins also storagehealth.py, into
// /opt/cloudstack/bin after a mkdir -p of it) to the host with scp and runs
// `[/opt/cloudstack/bin/|./]cloudstack.py --ssl=<true|false> --port=<port>`, which on Oracle VM
// Server patches the agent 3 Python package, writes ssl and port into
// agent.ini and restarts the agent. This agent serves that module's calls
// itself, so here the copy is received and dropped (only those two names,
// of a bounded size, are taken), the mkdir makes nothing, and the run checks that
// agent.ini's [server] ssl and port are what the plugin will connect to:
// exit status 0 when they are, 1 with what to set when they are not.
// Every other command, and an interactive login, is refused.
//
// It owns only that dialogue: it writes no file, changes no setting and
// runs no program. It reads the configuration the caller loaded; it
// imports config and nothing else of the project.
package cssetup
