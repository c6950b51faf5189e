package repository

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMakeLocalDirectory(t *testing.T) {
	e := newEnv(t, nil)
	src := filepath.Join(e.dir, "local")
	os.MkdirAll(src, 0o755)
	st, err := e.m.Make(ctxT(t), MakeRequest{Source: src, Shared: "0", Description: "local disk"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.State != StateMounted || st.MountPoint != filepath.Join(e.root, st.UUID) {
		t.Fatalf("status %+v", st)
	}
	mi, ok := mountAt(t, st.MountPoint)
	t.Logf("%+v %v", mi, ok)
	data, _ := os.ReadFile(e.repos)
	t.Logf("%s", data)
	data, _ = os.ReadFile(filepath.Join(st.MountPoint, ".ovsrepo"))
	t.Logf("%s", data)
}
