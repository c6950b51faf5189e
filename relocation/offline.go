package relocation

// OpOffline takes a stopped domain and its disks: an offline-transfer
// stream (relocation/filexfer) follows the Welcome.
const OpOffline = "offline"

// OfflineRequest says what an offline migration of a stopped domain moves
// and how the target should settle it.
type OfflineRequest struct {
	// Files are the disk images the target does not reach itself, in the
	// order the stream sends them.
	Files []OfflineFile `json:"files"`
	// Repository is the target repository (UUID) that receives the copied
	// disks; "" lets the target choose (cluster root, else the first
	// mounted repository with room).
	Repository string `json:"repository,omitempty"`
	// Start asks the target to start the domain once it is registered.
	Start bool `json:"start,omitempty"`
	// Force skips validation on the target (logged there).
	Force bool `json:"force,omitempty"`
}

// OfflineFile is one disk image an offline migration copies.
type OfflineFile struct {
	// Path is the disk's path in the source's vm.cfg.
	Path string `json:"path"`
	// Name is where it lands, relative to the domain's new folder
	// (running_pool/NAME on the target repository).
	Name string `json:"name"`
	// Size is the file's length; Data the bytes it holds outside holes
	// (what will be sent at most).
	Size int64 `json:"size"`
	Data int64 `json:"data"`
}
