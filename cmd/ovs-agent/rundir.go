package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/config"
)

// prepareRunDir makes dir a self-contained development agent: on first use
// it writes dir/agent.ini (the documented example file with the values of
// config.RunDirChanges) and a generated API password in dir/admin-password.
// It returns the agent.ini path.
func prepareRunDir(dir string, out io.Writer) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("run dir: %w", err)
	}
	ini := filepath.Join(abs, "agent.ini")
	pwFile := filepath.Join(abs, "admin-password")
	if _, err := os.Stat(ini); err == nil {
		fmt.Fprintf(out, "using %s (API user admin, password in %s)\n", ini, pwFile)
		return ini, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	d := config.DefaultForDir(abs)
	var raw [15]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw[:])
	hash, err := auth.Hash(pw)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("run dir: %w", err)
	}
	for _, fd := range d.Agent.FileDirs {
		if err := os.MkdirAll(fd, 0o700); err != nil {
			return "", fmt.Errorf("run dir: %w", err)
		}
	}
	if _, err := config.EditFile(ini, config.RunDirChanges(abs, hash)); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "created %s (API user admin, password in %s)\n", ini, pwFile)
	return ini, nil
}
