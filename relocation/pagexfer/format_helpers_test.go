package pagexfer

import "fmt"

// Helpers the tests read the format with: the single-stream batch parser
// and the codecs' names.

// parseBatch validates a batch body against a memory of memPages pages of
// ps bytes and, when it is valid as a whole, calls fn for each run with the
// run's data (nil for zero runs). runs is scratch space and is returned for
// reuse. Nothing is called for an invalid batch.
func parseBatch(body []byte, ps int, memPages uint64, runs []run, fn func(r run, data []byte) error) ([]run, uint64, uint64, error) {
	return parseStreamBatch(body, ps, memPages, stripes{}, runs, fn)
}

// codecName names a batch codec, for subtests.
func codecName(c byte) string {
	switch c {
	case codecS2:
		return "s2"
	case codecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec %d", c)
}
