package repository

// mountsUnder returns the mount points strictly below dir.
func mountsUnder(table []MountInfo, dir string) []string {
	var out []string
	for _, m := range table {
		if m.MountPoint != dir && within(m.MountPoint, dir) {
			out = append(out, m.MountPoint)
		}
	}
	return out
}
