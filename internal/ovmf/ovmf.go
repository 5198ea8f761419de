// Package ovmf reads the GUIDed table at the end of an OVMF (edk2) firmware
// image, where the firmware publishes what a confidential-VM host needs:
// the TDX metadata's offset, the SEV metadata's offset, the SEV-ES reset
// vector (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm).
package ovmf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrImage is wrapped by every refusal of an image.
var ErrImage = errors.New("not an OVMF image with the GUIDed table")

// The table ends 0x20 bytes before the end of the image, with a footer
// entry; each entry is its data, a u16 size (of the whole entry) and its
// GUID.
const (
	tableEndOffset = 0x20
	entryHeader    = 2 + 16
	footerGUID     = "96b582de-1fb2-45f7-baea-a366c55a082d"
)

// GUID encodes a GUID as UEFI stores it: the first three fields
// little-endian, the rest as written.
func GUID(s string) [16]byte {
	var raw, g [16]byte
	j := 0
	for i := 0; i < len(s) && j < 32; i++ {
		c := s[i]
		var v byte
		switch {
		case c == '-':
			continue
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		}
		raw[j/2] |= v << (4 * (1 - j%2))
		j++
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(g[8:], raw[8:])
	return g
}

// Block returns the data of the table entry with GUID want (without its
// size and GUID), walking the table from its footer.
func Block(fw []byte, want string) ([]byte, error) {
	if len(fw) < tableEndOffset+entryHeader {
		return nil, fmt.Errorf("%w: %d bytes", ErrImage, len(fw))
	}
	foot := fw[len(fw)-tableEndOffset-entryHeader : len(fw)-tableEndOffset]
	if [16]byte(foot[2:]) != GUID(footerGUID) {
		return nil, fmt.Errorf("%w: no table footer %s", ErrImage, footerGUID)
	}
	size := int(binary.LittleEndian.Uint16(foot))
	if size < entryHeader || size > len(fw)-tableEndOffset {
		return nil, fmt.Errorf("%w: a table of %d bytes", ErrImage, size)
	}
	start := len(fw) - tableEndOffset - size
	table := fw[start : start+size-entryHeader]
	target := GUID(want)
	for len(table) > 0 {
		if len(table) < entryHeader {
			return nil, fmt.Errorf("%w: entries do not fill the table", ErrImage)
		}
		e := table[len(table)-entryHeader:]
		n := int(binary.LittleEndian.Uint16(e))
		if n < entryHeader || n > len(table) {
			return nil, fmt.Errorf("%w: an entry of %d bytes in %d", ErrImage, n, len(table))
		}
		if [16]byte(e[2:]) == target {
			return table[len(table)-n : len(table)-entryHeader], nil
		}
		table = table[:len(table)-n]
	}
	return nil, fmt.Errorf("%w: no entry %s", ErrImage, want)
}
