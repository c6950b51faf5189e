package pagexfer

import "math/bits"

// CRC-32C of a concatenation from the CRCs of its parts, so that a part
// can be checksummed when it is produced (while it is in the cache) and
// the record's checksum put together later without reading it again.
//
// The CRC register, read bit-reversed, is a polynomial over GF(2): feeding
// n more bytes multiplies what the register held by x^(8n) modulo the
// Castagnoli polynomial before the new bytes' own contribution is added
// (the pre- and post-inversion cancel out between the two parts). So
// crc(a||b) = crc(a)·x^(8·len(b)) mod P + crc(b).

// castagnoliNormal is the Castagnoli polynomial without its x^32 term, in
// normal bit order (bit i is the coefficient of x^i).
const castagnoliNormal = 0x1edc6f41

// polyMulMod returns a·b modulo the polynomial (normal bit order), by
// Horner's rule over a's bits from x^31 down.
func polyMulMod(a, b uint32) uint32 {
	var r uint32
	for i := 31; i >= 0; i-- {
		high := r >> 31
		r <<= 1
		r ^= castagnoliNormal & -high // reduce the x^32 term
		r ^= b & -(a >> uint(i) & 1)
	}
	return r
}

// xPowMod returns x^e modulo the polynomial (square and multiply).
func xPowMod(e uint64) uint32 {
	result, base := uint32(1), uint32(2) // x^0, x^1
	for ; e != 0; e >>= 1 {
		if e&1 != 0 {
			result = polyMulMod(result, base)
		}
		base = polyMulMod(base, base)
	}
	return result
}

// crcCombine returns crc(0, a||b) from crc1 = crc(0, a), crc2 = crc(0, b)
// and len(b); with crc1 a running checksum c it is crc(c, b).
func crcCombine(crc1, crc2 uint32, len2 uint64) uint32 {
	if len2 == 0 {
		return crc1
	}
	shifted := polyMulMod(bits.Reverse32(crc1), xPowMod(8*len2))
	return bits.Reverse32(shifted) ^ crc2
}
