package cssetup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/config"
)

// ModuleName is the file the plugin copies and runs; HealthName the
// storage heartbeat script newer plugins copy beside it.
const (
	ModuleName = "cloudstack.py"
	HealthName = "storagehealth.py"
)

// ScriptsDir is where newer plugins put them (older ones: the login's
// folder).
const ScriptsDir = "/opt/cloudstack/bin"

// maxModule bounds the copy (the module is about 25 KB).
const maxModule = 1 << 20

// maxCommand bounds the command line.
const maxCommand = 4096

// Run answers one ssh command (SSH_ORIGINAL_COMMAND) for the plugin and
// returns the exit status.
func Run(command string, cfg *config.Config, stdin io.Reader, stdout, stderr io.Writer) int {
	words, err := split(command)
	if err != nil {
		fmt.Fprintf(stderr, "ovs-agent: %v\n", err)
		return 1
	}
	switch {
	case len(words) == 0:
		fmt.Fprintln(stderr, "ovs-agent: this ssh login serves Apache CloudStack's host setup only (scp of cloudstack.py, then ./cloudstack.py); log in with another key or from another address for a shell")
		return 1
	case len(words) == 3 && words[0] == "mkdir" && words[1] == "-p" && strings.TrimSuffix(words[2], "/") == ScriptsDir:
		// the scripts are not kept: nothing to make
		return 0
	case words[0] == "scp":
		if err := scpSink(words[1:], stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "ovs-agent: %v\n", err)
			return 1
		}
		return 0
	case isModule(words[0]) || (len(words) > 1 && (words[0] == "python" || words[0] == "python2") && isModule(words[1])):
		if !isModule(words[0]) {
			words = words[1:]
		}
		return module(words[1:], cfg, stdout, stderr)
	}
	fmt.Fprintf(stderr, "ovs-agent: %.64q is not one of Apache CloudStack's host setup commands (scp of %s, ./%s --ssl= --port=): refused\n", command, ModuleName, ModuleName)
	return 1
}

// isModule reports whether w names the module as the plugin runs it.
func isModule(w string) bool {
	return w == ModuleName || w == "./"+ModuleName || w == ScriptsDir+"/"+ModuleName
}

// split cuts a command line into words: blanks separate them, '...' and
// "..." quote (no escapes); characters a shell would act on are refused.
func split(s string) ([]string, error) {
	if len(s) > maxCommand {
		return nil, fmt.Errorf("the command is %d bytes, more than %d", len(s), maxCommand)
	}
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case strings.IndexByte(";&|<>$`\\(){}*?[]~!#\n\r", c) >= 0:
			return nil, fmt.Errorf("%q in the command: only CloudStack's plain setup commands are taken", c)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, errors.New("an unterminated quote in the command")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// scpSink takes one file named cloudstack.py by the scp protocol's sink
// side (scp -t: what an scp client talks to) and drops it.
func scpSink(args []string, in io.Reader, out io.Writer) error {
	sink := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-t":
			sink = true
		case "-d", "-p", "-v", "-q", "--":
		default:
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("scp %s: only a copy to this host (scp -t) is taken", a)
			}
			switch strings.TrimSuffix(a, "/") {
			case "", ".", ModuleName, "./" + ModuleName, ScriptsDir, ScriptsDir + "/" + ModuleName, HealthName, ScriptsDir + "/" + HealthName:
			default:
				return fmt.Errorf("scp to %.64q: only %s and %s, into the login's folder or %s, are taken", a, ModuleName, HealthName, ScriptsDir)
			}
		}
	}
	if !sink {
		return errors.New("scp: only a copy to this host (scp -t) is taken, none from it")
	}
	r := bufio.NewReaderSize(in, 4096)
	ok := func() error { _, err := out.Write([]byte{0}); return err }
	refuse := func(msg string) error {
		out.Write([]byte("\x01ovs-agent: " + msg + "\n"))
		return errors.New("scp: " + msg)
	}
	if err := ok(); err != nil {
		return err
	}
	got := false
	for {
		// a header line is read within the reader's 4096 bytes, never
		// more: a client that sends no newline is cut off there
		b, err := r.ReadSlice('\n')
		if err == io.EOF && len(b) == 0 {
			if !got {
				return errors.New("scp: no file came")
			}
			return nil
		}
		if errors.Is(err, bufio.ErrBufferFull) || len(b) > 512 {
			return refuse("a header line longer than 512 bytes")
		}
		if err != nil {
			return fmt.Errorf("scp: %v", err)
		}
		line := strings.TrimSuffix(string(b), "\n")
		switch {
		case strings.HasPrefix(line, "T"): // times (-p)
			if err := ok(); err != nil {
				return err
			}
		case strings.HasPrefix(line, "C"):
			f := strings.SplitN(line[1:], " ", 3)
			if len(f) != 3 {
				return refuse("a malformed file header")
			}
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || size < 0 {
				return refuse("a malformed file size")
			}
			if f[2] != ModuleName && f[2] != HealthName {
				return refuse(fmt.Sprintf("%.64q: only %s and %s are taken", f[2], ModuleName, HealthName))
			}
			if size > maxModule {
				return refuse(fmt.Sprintf("%s is %d bytes, more than %d", ModuleName, size, maxModule))
			}
			if err := ok(); err != nil {
				return err
			}
			if _, err := io.CopyN(io.Discard, r, size+1); err != nil { // the content and its \0
				return fmt.Errorf("scp: %s cut short: %v", ModuleName, err)
			}
			if err := ok(); err != nil {
				return err
			}
			got = true
		case strings.HasPrefix(line, "D"), strings.HasPrefix(line, "E"):
			return refuse("folders are not taken")
		default:
			return refuse("an unknown scp message")
		}
	}
}

// module answers ./cloudstack.py --ssl=S --port=P: status 0 when the
// agent serves plain HTTP or HTTPS as S says on port P.
func module(args []string, cfg *config.Config, stdout, stderr io.Writer) int {
	var ssl *bool
	port := 0
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "--ssl", "-s":
			// as the module reads it: empty leaves ssl as it is,
			// disable and false turn it off, anything else on
			if v != "" {
				b := v != "disable" && strings.ToLower(v) != "false"
				ssl = &b
			}
		case "--port", "-p":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65535 {
				fmt.Fprintf(stderr, "ovs-agent: --port=%.16q is not a port\n", v)
				return 1
			}
			port = n
		default:
			fmt.Fprintf(stderr, "ovs-agent: %s %.32q: only --ssl= and --port= are taken\n", ModuleName, a)
			return 1
		}
	}
	var wrong []string
	if ssl != nil && *ssl != cfg.Server.SSL {
		wrong = append(wrong, fmt.Sprintf("[server] ssl = %s (it is %s)", yesNo(*ssl), yesNo(cfg.Server.SSL)))
	}
	// cloudstack.py sets the port only above 1024
	if port > 1024 && port != cfg.Server.Port {
		wrong = append(wrong, fmt.Sprintf("[server] port = %d (it is %d)", port, cfg.Server.Port))
	}
	if len(wrong) > 0 {
		fmt.Fprintf(stderr, "ovs-agent: CloudStack will connect with other settings than agent.ini's: set %s in %s and restart the agent (systemctl restart ovs-agent), then add the host again\n", strings.Join(wrong, " and "), cfg.Source())
		return 1
	}
	fmt.Fprintf(stdout, "Api present, CloudStack in ovs-agent %s: the agent serves the module's calls itself (ssl %s, port %d)\n", ModuleName, yesNo(cfg.Server.SSL), cfg.Server.Port)
	return 0
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
