package mage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/snp"
)

// KindSNP is an AMD SEV-SNP confidential VM booted by QEMU and OVMF with a
// measured direct boot: the table's SHA-256 is in its kernel command line,
// which the launch digest covers through the SEV hashes page.
const KindSNP Kind = 3

// ErrVMMember is wrapped when a VM member is asked for an MRENCLAVE: its
// measurement is a launch digest (DeriveLaunch).
var ErrVMMember = errors.New("mage: a confidential VM member has a launch digest, not an MRENCLAVE")

// CmdlineTableKey is the kernel command-line parameter that carries a VM
// member's table: mage.table=<lowercase hex SHA-256 of the table>.
const CmdlineTableKey = "mage.table="

// Bounds on an SNP entry.
const (
	// MaxCmdline bounds a VM member's base command line.
	MaxCmdline = 2048
	// maxSNPRuns bounds the runs of pages after the hashes page.
	maxSNPRuns = 32
	// maxSNPSuffix bounds the pages after the hashes page (zero pages of
	// the SEV metadata, one VMSA per vCPU): deriving a member costs at
	// most this many PAGE_INFO hashes.
	maxSNPSuffix = 8192
	// maxTableVMPages bounds the pages the VM members of one table make a
	// verifier hash (8 MiB of PAGE_INFO records).
	maxTableVMPages = 1 << 16
	snpHeaderSize   = 48 + 8 + 2 + 2 + 4 + 32 + 32
	snpRunSize      = 8 + 8 + 8 + 4 + 4 + 48
)

// SNPEntry is an SNP member's record in a table: its launch cut at the
// hashes page, and the command line the table's hash is appended to.
type SNPEntry struct {
	Launch  snp.Launch
	Cmdline string // the base command line (BoundCmdline adds the table)
}

// TableSHA256 is the hash a VM member's command line carries: the SHA-256
// of the versioned table's bytes (VersionedTable.Marshal, no padding).
func TableSHA256(payload []byte) [32]byte { return sha256.Sum256(payload) }

// BoundCmdline is the command line a VM member boots with: its base
// command line and mage.table=<hex of the table's SHA-256>.
func BoundCmdline(base string, table [32]byte) string {
	bind := CmdlineTableKey + hex.EncodeToString(table[:])
	if base == "" {
		return bind
	}
	return base + " " + bind
}

// CmdlineTable returns the table hash a kernel command line carries (as
// /proc/cmdline shows it): exactly one mage.table= parameter of 64
// lowercase hex digits.
func CmdlineTable(cmdline string) ([32]byte, error) {
	var found []string
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineTableKey); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		return [32]byte{}, fmt.Errorf("%w: the command line has %d %s parameters, want one", ErrTable, len(found), CmdlineTableKey)
	}
	b, err := hex.DecodeString(found[0])
	if err != nil || len(b) != 32 || hex.EncodeToString(b) != found[0] {
		return [32]byte{}, fmt.Errorf("%w: %s%q is not 64 lowercase hex digits", ErrTable, CmdlineTableKey, found[0])
	}
	return [32]byte(b), nil
}

// checkCmdline checks a base command line: printable ASCII, bounded, and
// no table parameter of its own.
func checkCmdline(s string) error {
	if len(s) > MaxCmdline {
		return fmt.Errorf("%w: a command line of %d bytes, at most %d", ErrTable, len(s), MaxCmdline)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("%w: command line byte %d is %#x, not printable ASCII", ErrTable, i, s[i])
		}
	}
	if strings.Contains(s, CmdlineTableKey) {
		return fmt.Errorf("%w: the base command line already has a %s parameter", ErrTable, CmdlineTableKey)
	}
	return nil
}

// Digest returns the member's launch digest over a table whose SHA-256 is
// table: the hashes page with the bound command line, then the pages after
// it.
func (e *SNPEntry) Digest(table [32]byte) ([48]byte, error) {
	return e.Launch.Digest(snp.CmdlineHash(BoundCmdline(e.Cmdline, table)))
}

// run is a run of pages after the hashes page: count pages of one type and
// contents, the GPA advancing by step.
type run struct {
	typ      byte
	gpa      uint64
	step     uint64
	count    uint32
	contents [48]byte
}

func runsOf(rs []snp.Record) []run {
	var out []run
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.typ == r.Type && last.contents == r.Contents {
				if last.count == 1 {
					last.step, last.count = r.GPA-last.gpa, 2
					continue
				}
				if last.gpa+uint64(last.count)*last.step == r.GPA {
					last.count++
					continue
				}
			}
		}
		out = append(out, run{typ: r.Type, gpa: r.GPA, count: 1, contents: r.Contents})
	}
	return out
}

// check checks that the entry can be encoded and derived.
func (e *SNPEntry) check() error {
	if err := checkCmdline(e.Cmdline); err != nil {
		return err
	}
	l := &e.Launch
	switch {
	case len(l.Suffix) > maxSNPSuffix:
		return fmt.Errorf("%w: SNP entry: %d pages after the hashes page, at most %d", ErrTable, len(l.Suffix), maxSNPSuffix)
	case l.TableOffset < 0 || l.TableOffset+snp.HashTableSize > snp.PageSize || l.HashesGPA%snp.PageSize != 0:
		return fmt.Errorf("%w: SNP entry: hashes table at %#x+%#x", ErrTable, l.HashesGPA, l.TableOffset)
	case len(runsOf(l.Suffix)) > maxSNPRuns:
		return fmt.Errorf("%w: SNP entry: more than %d runs of pages after the hashes page", ErrTable, maxSNPRuns)
	}
	for i, r := range l.Suffix {
		if !snp.KnownPageType(r.Type) {
			return fmt.Errorf("%w: SNP entry: page %d after the hashes page has type %d", ErrTable, i, r.Type)
		}
	}
	return nil
}

// marshal encodes a checked entry (docs/table-format.md, "Confidential VM
// members").
func (e *SNPEntry) marshal() []byte {
	l := &e.Launch
	runs := runsOf(l.Suffix)
	le := binary.LittleEndian
	b := make([]byte, 0, snpHeaderSize+snpRunSize*len(runs)+len(e.Cmdline))
	b = append(b, l.Prefix[:]...)
	b = le.AppendUint64(b, l.HashesGPA)
	b = le.AppendUint16(b, uint16(l.TableOffset))
	b = le.AppendUint16(b, uint16(len(runs)))
	b = le.AppendUint32(b, uint32(len(e.Cmdline)))
	b = append(append(b, l.Kernel[:]...), l.Initrd[:]...)
	for _, r := range runs {
		b = append(b, r.typ, 0, 0, 0, 0, 0, 0, 0)
		b = le.AppendUint64(b, r.gpa)
		b = le.AppendUint64(b, r.step)
		b = le.AppendUint32(b, r.count)
		b = le.AppendUint32(b, 0)
		b = append(b, r.contents[:]...)
	}
	return append(b, e.Cmdline...)
}

// parseSNPEntry decodes an SNP entry, bounding the pages it makes a
// verifier hash.
func parseSNPEntry(b []byte) (*SNPEntry, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: SNP entry: %s", ErrTable, fmt.Sprintf(format, a...))
	}
	if len(b) < snpHeaderSize {
		return nil, bad("%d bytes, want at least %d", len(b), snpHeaderSize)
	}
	le := binary.LittleEndian
	e := &SNPEntry{}
	l := &e.Launch
	l.Prefix = [48]byte(b)
	l.HashesGPA = le.Uint64(b[48:])
	l.TableOffset = int(le.Uint16(b[56:]))
	nruns, clen := int(le.Uint16(b[58:])), uint64(le.Uint32(b[60:]))
	l.Kernel, l.Initrd = [32]byte(b[64:]), [32]byte(b[96:])
	switch {
	case l.HashesGPA%snp.PageSize != 0:
		return nil, bad("hashes page GPA %#x is not page-aligned", l.HashesGPA)
	case l.TableOffset+snp.HashTableSize > snp.PageSize:
		return nil, bad("hashes table at %#x does not fit its page", l.TableOffset)
	case nruns > maxSNPRuns:
		return nil, bad("%d runs, at most %d", nruns, maxSNPRuns)
	case clen > MaxCmdline:
		return nil, bad("a command line of %d bytes, at most %d", clen, MaxCmdline)
	case uint64(len(b)) != snpHeaderSize+uint64(nruns)*snpRunSize+clen:
		return nil, bad("%d bytes for %d runs and a %d-byte command line", len(b), nruns, clen)
	}
	total := 0
	for i := range nruns {
		r := b[snpHeaderSize+i*snpRunSize:][:snpRunSize]
		if !bytes.Equal(r[1:8], make([]byte, 7)) || le.Uint32(r[28:]) != 0 {
			return nil, bad("run %d: reserved bytes are not zero", i)
		}
		x := run{typ: r[0], gpa: le.Uint64(r[8:]), step: le.Uint64(r[16:]), count: le.Uint32(r[24:]), contents: [48]byte(r[32:])}
		if !snp.KnownPageType(x.typ) || x.count == 0 {
			return nil, bad("run %d: %d pages of type %d", i, x.count, x.typ)
		}
		if total += int(x.count); total > maxSNPSuffix {
			return nil, bad("more than %d pages after the hashes page", maxSNPSuffix)
		}
		for k := range x.count {
			l.Suffix = append(l.Suffix, snp.Record{Type: x.typ, GPA: x.gpa + uint64(k)*x.step, Contents: x.contents})
		}
	}
	e.Cmdline = string(b[snpHeaderSize+nruns*snpRunSize:])
	if err := checkCmdline(e.Cmdline); err != nil {
		return nil, err
	}
	if !bytes.Equal(e.marshal(), b) {
		return nil, bad("not in its canonical encoding (runs merged as far as they go)")
	}
	return e, nil
}

// NewVMDeriver reads the table a VM member was given (the versioned
// table's bytes, from any channel: they need not be measured) and checks
// it against the member's own kernel command line (/proc/cmdline), which
// its launch measured: the table is the member's own only if its SHA-256
// is the command line's mage.table. libpal is needed if the group has
// Gramine members.
func NewVMDeriver(payload []byte, cmdline string, libpal *gramine.Libpal) (*TableDeriver, error) {
	want, err := CmdlineTable(cmdline)
	if err != nil {
		return nil, err
	}
	if got := TableSHA256(payload); got != want {
		return nil, fmt.Errorf("%w: the table's SHA-256 is %x, this VM's command line carries %x: it is not this member's table", ErrTable, got, want)
	}
	return newVMTableDeriver(payload, libpal)
}

// newVMTableDeriver reads a VM member's table: a flat versioned table,
// without trailing bytes.
func newVMTableDeriver(payload []byte, libpal *gramine.Libpal) (*TableDeriver, error) {
	t, err := ParseVersionedTable(payload)
	if err != nil {
		return nil, err
	}
	if t.Merkle || !bytes.Equal(t.Marshal(), payload) {
		return nil, fmt.Errorf("%w: a VM member's table is a flat versioned table, without trailing bytes", ErrTable)
	}
	return newVersionedDeriver(t, payload, libpal)
}
