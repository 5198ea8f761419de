package tdx

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// The TD event log (the ACPI CCEL table's log area): the TCG PC Client
// crypto-agile format, whose "PCR index" is a TDX measurement register
// index, 0 for MRTD and 1 to 4 for RTMR0 to RTMR3 (UEFI 2.10, CC
// measurement; TCG PC Client Platform Firmware Profile, 10.2).

// Event types this package needs to know by value.
const (
	EventNoAction = 0x3 // EV_NO_ACTION: not extended into any register
)

// tpmAlgSHA384 is TPM_ALG_SHA384, the digest TDX registers extend.
const tpmAlgSHA384 = 0x000c

// Event is one event of a TD event log.
type Event struct {
	MRIndex uint32   // 0: MRTD, 1 to 4: RTMR0 to RTMR3
	Type    uint32   // EV_* of the TCG PC Client profile
	Digest  [48]byte // its SHA-384 digest (zero for EV_NO_ACTION)
	Data    []byte   // the event data
}

// maxEvents bounds a log's parse.
const maxEvents = 1 << 16

// ParseEventLog decodes a TD event log: the Spec ID event that names the
// digest algorithms and their sizes, then every event up to the end of the
// data or the erased (0xff) rest of the area. Each event must carry a
// SHA-384 digest.
func ParseEventLog(b []byte) ([]Event, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: event log: %s", ErrFirmware, fmt.Sprintf(format, a...))
	}
	le := binary.LittleEndian
	// The first event is in the SHA-1 format: index, type, 20-byte digest,
	// size, then the Spec ID event.
	if len(b) < 32 || le.Uint32(b[4:]) != EventNoAction {
		return nil, bad("no Spec ID event")
	}
	n := uint64(le.Uint32(b[28:]))
	if n > uint64(len(b)-32) {
		return nil, bad("Spec ID event of %d bytes", n)
	}
	spec := b[32 : 32+n]
	if len(spec) < 28 || !bytes.Equal(spec[:16], []byte("Spec ID Event03\x00")) {
		return nil, bad("the first event is not a Spec ID Event03")
	}
	algs := le.Uint32(spec[24:])
	if algs == 0 || algs > 8 || uint64(len(spec)) < 28+4*uint64(algs) {
		return nil, bad("%d digest algorithms", algs)
	}
	sizes := map[uint16]int{}
	for i := range algs {
		sizes[le.Uint16(spec[28+4*i:])] = int(le.Uint16(spec[30+4*i:]))
	}
	if sizes[tpmAlgSHA384] != 48 {
		return nil, bad("no SHA-384 digests")
	}
	events := []Event{{MRIndex: le.Uint32(b), Type: EventNoAction, Data: spec}}
	rest := b[32+n:]
	for len(rest) >= 4 && le.Uint32(rest) != 0xffffffff {
		if len(events) > maxEvents {
			return nil, bad("more than %d events", maxEvents)
		}
		if len(rest) < 12 {
			return nil, bad("event %d is truncated", len(events))
		}
		e := Event{MRIndex: le.Uint32(rest), Type: le.Uint32(rest[4:])}
		count := le.Uint32(rest[8:])
		if count == 0 || count > algs {
			return nil, bad("event %d has %d digests", len(events), count)
		}
		p := rest[12:]
		for range count {
			if len(p) < 2 {
				return nil, bad("event %d is truncated", len(events))
			}
			alg := le.Uint16(p)
			size, ok := sizes[alg]
			if !ok || len(p) < 2+size {
				return nil, bad("event %d: digest algorithm %#x", len(events), alg)
			}
			if alg == tpmAlgSHA384 {
				copy(e.Digest[:], p[2:])
			}
			p = p[2+size:]
		}
		if len(p) < 4 || uint64(le.Uint32(p)) > uint64(len(p)-4) {
			return nil, bad("event %d: data past the log", len(events))
		}
		size := le.Uint32(p)
		e.Data = p[4 : 4+size]
		events = append(events, e)
		rest = p[4+size:]
	}
	return events, nil
}

// ReplayRTMRs replays a TD event log's extensions into RTMR0 to RTMR3:
// each register starts at zero, and every event of index 1 to 4 but
// EV_NO_ACTION extends register index-1 with its digest
// (RTMR = SHA-384(RTMR || digest)). Events of MRTD (index 0) are not
// replayed: MRTD is the launch measurement.
func ReplayRTMRs(events []Event) ([4][48]byte, error) {
	var r [4][48]byte
	for i, e := range events {
		switch {
		case e.Type == EventNoAction || e.MRIndex == 0:
		case e.MRIndex > 4:
			return r, fmt.Errorf("%w: event log: event %d extends register %d", ErrFirmware, i, e.MRIndex)
		default:
			r[e.MRIndex-1] = Extend(r[e.MRIndex-1], e.Digest)
		}
	}
	return r, nil
}

// Extend returns a measurement register extended with a digest, as the
// TDX module's TDG.MR.RTMR.EXTEND does: SHA-384(register || digest).
func Extend(register, digest [48]byte) [48]byte {
	var b [96]byte
	copy(b[:], register[:])
	copy(b[48:], digest[:])
	return sha512.Sum384(b[:])
}
