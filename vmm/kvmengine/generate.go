package kvmengine

import _ "embed"

//go:generate sh build.sh

// workloadBin is the flat binary built from src/ by build.sh, loaded at
// workload.CodeAddr.
//
//go:embed workload.bin
var workloadBin []byte
