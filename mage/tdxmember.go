package mage

import (
	"crypto/sha512"
	"fmt"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/tdx"
)

// KindTDX is an Intel TDX trust domain: its firmware (MRTD) and boot
// (RTMR0 to RTMR2) are fixed, and its measured boot code extends RTMR3
// with the table's hash (TableEvent) before it reads anything else.
const KindTDX Kind = 4

// TableEventTag prefixes the table's SHA-256 in the event a TDX member
// extends RTMR3 with.
const TableEventTag = "MAGE table v1\x00"

// TableEvent is the digest a TDX member extends RTMR3 with at boot:
// SHA-384(TableEventTag || SHA-256 of the table).
func TableEvent(table [32]byte) [48]byte {
	var b [len(TableEventTag) + 32]byte
	copy(b[:], TableEventTag)
	copy(b[len(TableEventTag):], table[:])
	return sha512.Sum384(b[:])
}

// TDMeasurement is what a TD quote says a trust domain is.
type TDMeasurement struct {
	MRTD [48]byte
	RTMR [4][48]byte
}

// TDXEntry is a TDX member's record in a table: its MRTD, the RTMRs its
// boot leaves (from a reference boot's event log: tdx.ReplayRTMRs), and
// RTMR3 before the table event (zeros when the event comes first).
type TDXEntry struct {
	MRTD  [48]byte
	RTMR  [3][48]byte
	RTMR3 [48]byte
}

const tdxEntrySize = 5 * 48

// Measurement returns the member's measurement over a table whose SHA-256
// is table: RTMR3 extended with the table event.
func (e *TDXEntry) Measurement(table [32]byte) TDMeasurement {
	m := TDMeasurement{MRTD: e.MRTD}
	copy(m.RTMR[:3], e.RTMR[:])
	m.RTMR[3] = tdx.Extend(e.RTMR3, TableEvent(table))
	return m
}

func (e *TDXEntry) marshal() []byte {
	b := make([]byte, 0, tdxEntrySize)
	b = append(b, e.MRTD[:]...)
	for _, r := range e.RTMR {
		b = append(b, r[:]...)
	}
	return append(b, e.RTMR3[:]...)
}

func parseTDXEntry(b []byte) (*TDXEntry, error) {
	if len(b) != tdxEntrySize {
		return nil, fmt.Errorf("%w: TDX entry of %d bytes, want %d", ErrTable, len(b), tdxEntrySize)
	}
	e := &TDXEntry{MRTD: [48]byte(b)}
	for i := range e.RTMR {
		e.RTMR[i] = [48]byte(b[48*(i+1):])
	}
	e.RTMR3 = [48]byte(b[4*48:])
	return e, nil
}

// NewTDXDeriver reads the table a TDX member was handed (the versioned
// table's bytes, from any channel). The table is the member's own only if
// the member's own measurement is among those it derives: its RTMR3 holds
// the event of the table its boot extended it with, and another table
// derives another RTMR3.
func NewTDXDeriver(payload []byte, libpal *gramine.Libpal) (*TableDeriver, error) {
	return newVMTableDeriver(payload, libpal)
}
