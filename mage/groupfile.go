package mage

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/tdx"
)

// GroupFile is the input of "magectl group sign": the members of a group and
// where their inputs and outputs live. It is JSON:
//
//	{
//	  "name": "payments",
//	  "date": "20261123",
//	  "members": [
//	    {"name": "frontend", "enclave": "frontend.so", "config": "frontend.config.xml",
//	     "key": "keys/frontend.pem", "output": "out/frontend.signed.so"},
//	    {"name": "ledger", "enclave": "ledger.so", "key": "keys/ledger.pem",
//	     "output": "out/ledger.signed.so"}
//	  ]
//	}
//
// Relative paths are relative to the directory of the group file. "config"
// may be omitted (the SDK signer's defaults apply). "date" (YYYYMMDD) is
// optional and applies to every member (a member's own "date" is refused:
// a group is signed on one date); without it the signer uses
// SOURCE_DATE_EPOCH or today. Member order is table order: member i has
// entry i.
type GroupFile struct {
	Name string `json:"name"`
	Date string `json:"date,omitempty"`
	// Libpal is the libpal.so every Gramine member runs (required with
	// Gramine members).
	Libpal  string       `json:"libpal,omitempty"`
	Members []MemberFile `json:"members"`
}

// MemberFile names one member's inputs and output: an SGX SDK enclave
// ("enclave", optional "config"), a Gramine enclave ("manifest": its
// stock .manifest.sgx; "output" is then the final manifest, and "sig" its
// SIGSTRUCT, by default the output's name with .sig for .manifest.sgx), or
// an SEV-SNP VM ("snp": its launch; "output" is then the kernel command
// line it boots with, and "table" the table it is handed, by default the
// output's name with .table for .cmdline; it has no key).
type MemberFile struct {
	Name     string         `json:"name"`
	Enclave  string         `json:"enclave,omitempty"`
	Manifest string         `json:"manifest,omitempty"`
	SNP      *SNPMemberFile `json:"snp,omitempty"`
	TDX      *TDXMemberFile `json:"tdx,omitempty"`
	Table    string         `json:"table,omitempty"`
	Config   string         `json:"config,omitempty"`
	Key      string         `json:"key"`
	Output   string         `json:"output"`
	Sig      string         `json:"sig,omitempty"`
	// Date is refused: the date is the group's (GroupFile.Date). It is
	// decoded only to say so clearly.
	Date string `json:"date,omitempty"`
	// Keep, in a successor group (magectl group sign --predecessor), keeps
	// the predecessor's member of this name unchanged: it has no inputs
	// and its signed file stays as it is. Proof is where its new lineage
	// proof goes (default: NAME.proof beside the group file).
	Keep  bool   `json:"keep,omitempty"`
	Proof string `json:"proof,omitempty"`
}

// TDXMemberFile is an Intel TDX trust domain's boot: its firmware (whose
// MRTD is computed) or its MRTD, and one of three sources of RTMR0 to
// RTMR2: the event log of a reference boot (its CCEL data, replayed), the
// RTMRs themselves, or a direct boot (kernel, initrd, command line,
// memory and the VM's ACPI tables, measured with the firmware as
// tdx.BootRTMRs does). The TD's "output" is the table it is handed; its
// boot extends RTMR3 with the table's event (mage.TableEvent).
type TDXMemberFile struct {
	Firmware string   `json:"firmware,omitempty"`
	MRTD     string   `json:"mrtd,omitempty"`
	EventLog string   `json:"event_log,omitempty"`
	RTMR     []string `json:"rtmr,omitempty"` // RTMR0, RTMR1, RTMR2 in hex

	Kernel     string `json:"kernel,omitempty"`
	Initrd     string `json:"initrd,omitempty"`
	Cmdline    string `json:"cmdline,omitempty"`
	Memory     string `json:"memory,omitempty"`      // as QEMU's -m: "2G", or megabytes
	ACPITables string `json:"acpi_tables,omitempty"` // QEMU's etc/acpi/tables for this VM
}

// Inputs are the files a TDX member reads (empty where not given).
func (v *TDXMemberFile) Inputs() []string {
	return []string{v.Firmware, v.EventLog, v.Kernel, v.Initrd, v.ACPITables}
}

// SNPMemberFile is an SEV-SNP VM's launch, as QEMU makes it with a
// measured direct boot (kernel-hashes=on): its firmware (an OVMF image
// with an SNP_KERNEL_HASHES section, or its last pages with
// "firmware_digest"), vCPUs, kernel, initrd and base command line.
type SNPMemberFile struct {
	Firmware       string `json:"firmware"`
	FirmwareDigest string `json:"firmware_digest,omitempty"` // hex: the launch digest after the firmware's pages
	VCPUs          int    `json:"vcpus"`
	VCPUType       string `json:"vcpu_type"`
	GuestFeatures  string `json:"guest_features,omitempty"` // default 0x1
	Kernel         string `json:"kernel"`
	Initrd         string `json:"initrd,omitempty"`
	Cmdline        string `json:"cmdline,omitempty"`
}

// Inputs are the files an SNP member reads (empty where not given).
func (v *SNPMemberFile) Inputs() []string { return []string{v.Firmware, v.Kernel, v.Initrd} }

// VMInputs are the files a confidential VM member reads, or nil for a
// member that is not a VM.
func (m *MemberFile) VMInputs() []string {
	switch {
	case m.SNP != nil:
		return m.SNP.Inputs()
	case m.TDX != nil:
		return m.TDX.Inputs()
	}
	return nil
}

// ParseGroupFile decodes and checks a group file. dir is the directory that
// relative paths are resolved against; the returned paths are resolved.
func ParseGroupFile(data []byte, dir string) (*GroupFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var g GroupFile
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("group file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("group file: trailing data after the JSON object")
	}
	if len(g.Members) == 0 {
		return nil, errors.New("group file: no members")
	}
	if g.Libpal != "" && !filepath.IsAbs(g.Libpal) {
		g.Libpal = filepath.Join(dir, g.Libpal)
	}
	if g.Date != "" {
		// YYYYMMDD as sgx_sign takes it, or YYYY-MM-DD as gramine-sgx-sign
		// does; kept as YYYYMMDD.
		t, err := time.Parse("20060102", g.Date)
		if err != nil || len(g.Date) != 8 {
			if t, err = time.Parse("2006-01-02", g.Date); err != nil || len(g.Date) != 10 {
				return nil, fmt.Errorf("group file: date %q: want YYYYMMDD or YYYY-MM-DD", g.Date)
			}
		}
		g.Date = t.Format("20060102")
	}
	names := map[string]int{}
	outputs := map[string]int{}
	// register claims a member's name and output (its signed file, or a
	// kept member's proof) for member i.
	register := func(name, output string, i int) error {
		if j, dup := names[name]; dup {
			return fmt.Errorf("duplicate name, also member %d", j)
		}
		names[name] = i
		out := filepath.Clean(output)
		if j, dup := outputs[out]; dup {
			return fmt.Errorf("output %s is also member %d's output", output, j)
		}
		outputs[out] = i
		return nil
	}
	for i := range g.Members {
		m := &g.Members[i]
		where := fmt.Sprintf("group file: member %d", i)
		if m.Name != "" {
			where += fmt.Sprintf(" (%s)", m.Name)
		} else if m.Keep {
			return nil, fmt.Errorf("%s: a kept member names the predecessor's member it keeps (\"name\")", where)
		} else {
			m.Name = fmt.Sprintf("member%d", i)
		}
		if m.Date != "" {
			return nil, fmt.Errorf("%s: \"date\" is set per group, not per member (move it next to \"name\" at the top)", where)
		}
		if m.Keep {
			if m.Enclave != "" || m.Manifest != "" || m.Config != "" || m.Key != "" || m.Output != "" || m.Sig != "" || m.SNP != nil || m.TDX != nil || m.Table != "" {
				return nil, fmt.Errorf("%s: a kept member has only \"name\", \"keep\" and \"proof\": its signed file stays as it is", where)
			}
			if m.Proof == "" {
				m.Proof = m.Name + ".proof"
			}
			if !filepath.IsAbs(m.Proof) {
				m.Proof = filepath.Join(dir, m.Proof)
			}
			if err := register(m.Name, m.Proof, i); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			continue
		}
		if m.Proof != "" {
			return nil, fmt.Errorf("%s: \"proof\" applies to kept members only (a signed member's proof is written beside it)", where)
		}
		if m.TDX != nil {
			if err := checkTDXMemberFile(m, dir); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := register(m.Name, m.Output, i); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			continue
		}
		if m.SNP != nil || m.Table != "" {
			if err := checkSNPMemberFile(m, dir); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := register(m.Name, m.Output, i); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if j, dup := outputs[filepath.Clean(m.Table)]; dup {
				return nil, fmt.Errorf("%s: table %s is also member %d's output", where, m.Table, j)
			}
			outputs[filepath.Clean(m.Table)] = i
			continue
		}
		switch {
		case (m.Enclave == "") == (m.Manifest == ""):
			return nil, fmt.Errorf("%s: give one of \"enclave\" (an SDK enclave) and \"manifest\" (a Gramine manifest)", where)
		case m.Manifest != "" && m.Config != "":
			return nil, fmt.Errorf("%s: \"config\" applies to SDK enclaves only", where)
		case m.Enclave != "" && m.Sig != "":
			return nil, fmt.Errorf("%s: \"sig\" applies to Gramine members only (an SDK enclave carries its SIGSTRUCT)", where)
		case m.Manifest != "" && g.Libpal == "":
			return nil, fmt.Errorf("%s: a Gramine member needs the group's \"libpal\"", where)
		}
		for field, p := range map[string]*string{"key": &m.Key, "output": &m.Output} {
			if strings.TrimSpace(*p) == "" {
				return nil, fmt.Errorf("%s: %q is required", where, field)
			}
		}
		if m.Manifest != "" && m.Sig == "" {
			m.Sig = strings.TrimSuffix(strings.TrimSuffix(m.Output, ".sgx"), ".manifest") + ".sig"
		}
		for _, p := range []*string{&m.Enclave, &m.Manifest, &m.Config, &m.Key, &m.Output, &m.Sig} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		if err := register(m.Name, m.Output, i); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if filepath.Clean(m.Enclave+m.Manifest) == filepath.Clean(m.Output) {
			return nil, fmt.Errorf("%s: output %s would overwrite its input", where, m.Output)
		}
	}
	for i, m := range g.Members {
		if m.Keep {
			continue
		}
		if vm := m.VMInputs(); vm != nil {
			for _, in := range vm {
				if j, ok := outputs[filepath.Clean(in)]; ok && in != "" {
					return nil, fmt.Errorf("group file: member %d's input %s is member %d's output", i, in, j)
				}
			}
			continue
		}
		if j, ok := outputs[filepath.Clean(m.Enclave+m.Manifest)]; ok {
			return nil, fmt.Errorf("group file: member %d's input %s is member %d's output", i, m.Enclave, j)
		}
	}
	return &g, nil
}

// ParseManifest decodes a group manifest, the group.json that group
// signing writes, and checks it: members in table order (index i at
// position i), each with an identity, and the table's hash.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("group manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("group manifest: trailing data after the JSON object")
	}
	if len(m.Members) == 0 {
		return nil, errors.New("group manifest: no members")
	}
	if m.Paths != "" && m.Paths != PathsRelativeToManifest {
		return nil, fmt.Errorf("group manifest: paths %q: want %q or none", m.Paths, PathsRelativeToManifest)
	}
	switch m.Format {
	case "":
		if err := checkSectionSize(m.SectionSize); err != nil {
			return nil, fmt.Errorf("group manifest: section_size: %w", err)
		}
		if c := Capacity(m.SectionSize); len(m.Members) > c {
			return nil, fmt.Errorf("group manifest: %d members, a %d-byte section holds at most %d", len(m.Members), m.SectionSize, c)
		}
	case "merkle":
		if m.SectionSize != 0 && checkSectionSize(m.SectionSize) != nil {
			return nil, fmt.Errorf("group manifest: section_size %d", m.SectionSize)
		}
		if len(m.Members) > MaxMerkleMembers {
			return nil, fmt.Errorf("group manifest: %d members, more than %d", len(m.Members), MaxMerkleMembers)
		}
	case "gramine", "versioned":
		if m.Format == "gramine" && m.SectionSize != 0 {
			return nil, errors.New("group manifest: a Gramine group has no SDK section")
		}
		if m.SectionSize != 0 && checkSectionSize(m.SectionSize) != nil {
			return nil, fmt.Errorf("group manifest: section_size %d", m.SectionSize)
		}
		if len(m.Members) > MaxGramineMembers {
			return nil, fmt.Errorf("group manifest: %d members, more than %d", len(m.Members), MaxGramineMembers)
		}
	default:
		return nil, fmt.Errorf("group manifest: format %q is not classic, merkle, gramine or versioned", truncateString(m.Format, 20))
	}
	if m.UpdateKey != "" || m.Epoch != 0 || m.Predecessor != "" || m.Lineage != "" {
		if m.Format != "merkle" {
			return nil, errors.New("group manifest: an update key needs a merkle table")
		}
		if k, err := hex.DecodeString(m.UpdateKey); err != nil || len(k) != 32 {
			return nil, fmt.Errorf("group manifest: update_key %q: want 64 hex digits", truncateString(m.UpdateKey, 70))
		}
		if h, err := hex.DecodeString(m.Predecessor); (m.Epoch > 0) != (err == nil && len(h) == 32) || m.Epoch > MaxEpoch {
			return nil, fmt.Errorf("group manifest: epoch %d with predecessor_sha256 %q: epochs after 0 (up to %d) record their predecessor's 64 hex digits", m.Epoch, truncateString(m.Predecessor, 70), MaxEpoch)
		}
		if m.Lineage == "" {
			return nil, errors.New("group manifest: an updatable group names its lineage file")
		}
	}
	if h, err := hex.DecodeString(m.TableSHA256); err != nil || len(h) != 32 {
		return nil, fmt.Errorf("group manifest: table_sha256 %q: want 64 hex digits", m.TableSHA256)
	}
	seen := map[sgx.Measurement]int{}
	seenVM := map[string]int{}
	for i, mm := range m.Members {
		if mm.Index != i {
			return nil, fmt.Errorf("group manifest: member at position %d has index %d", i, mm.Index)
		}
		if mm.Kind == KindTDX.String() {
			ok := m.Format == "versioned" && mm.Identity == (sgx.Identity{}) && len(mm.RTMR) == 4
			for _, h := range append([]string{mm.MRTD}, mm.RTMR...) {
				b, err := hex.DecodeString(h)
				ok = ok && err == nil && len(b) == 48
			}
			if !ok {
				return nil, fmt.Errorf("group manifest: TDX member %d: want mrtd and four rtmr of 96 hex digits, no enclave identity, in a versioned group", i)
			}
			key := mm.MRTD + strings.Join(mm.RTMR, "")
			if j, dup := seenVM[key]; dup {
				return nil, fmt.Errorf("group manifest: members %d and %d have the same TD measurement", j, i)
			}
			seenVM[key] = i
			continue
		}
		if mm.Kind == KindSNP.String() {
			l, err := hex.DecodeString(mm.Launch)
			switch {
			case err != nil || len(l) != 48 || m.Format != "versioned":
				return nil, fmt.Errorf("group manifest: SNP member %d: launch %q: want 96 hex digits, in a versioned group", i, truncateString(mm.Launch, 100))
			case mm.Identity != (sgx.Identity{}):
				return nil, fmt.Errorf("group manifest: SNP member %d has an enclave identity", i)
			}
			if j, dup := seenVM[mm.Launch]; dup {
				return nil, fmt.Errorf("group manifest: members %d and %d have the same launch digest", j, i)
			}
			seenVM[mm.Launch] = i
			continue
		}
		if mm.Identity.MRENCLAVE == (sgx.Measurement{}) {
			return nil, fmt.Errorf("group manifest: member %d has no MRENCLAVE", i)
		}
		if j, dup := seen[mm.Identity.MRENCLAVE]; dup {
			return nil, fmt.Errorf("group manifest: members %d and %d have the same MRENCLAVE", j, i)
		}
		seen[mm.Identity.MRENCLAVE] = i
	}
	return &m, nil
}

// Measurements returns every member's MRENCLAVE, in table order.
func (m *Manifest) Measurements() []sgx.Measurement {
	out := make([]sgx.Measurement, len(m.Members))
	for i, mm := range m.Members {
		out[i] = mm.Identity.MRENCLAVE
	}
	return out
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkSNPMemberFile checks an SNP member of a group file and resolves its
// paths against dir.
func checkSNPMemberFile(m *MemberFile, dir string) error {
	v := m.SNP
	switch {
	case v == nil:
		return errors.New("\"table\" applies to SNP members only")
	case m.Enclave != "" || m.Manifest != "" || m.Config != "" || m.Key != "" || m.Sig != "":
		return errors.New("an SNP member has \"snp\", \"output\" and \"table\" only (a VM is not signed: no key)")
	case strings.TrimSpace(m.Output) == "":
		return errors.New("\"output\" (the command line the VM boots with) is required")
	case v.Firmware == "" || v.Kernel == "":
		return errors.New("an SNP member needs \"firmware\" and \"kernel\" (a measured direct boot carries the table)")
	case v.VCPUs < 1:
		return fmt.Errorf("\"vcpus\" is %d, want at least 1", v.VCPUs)
	case v.VCPUType == "":
		return errors.New("\"vcpu_type\" (QEMU's CPU model, such as EPYC-Milan) is required")
	}
	if err := checkCmdline(v.Cmdline); err != nil {
		return err
	}
	if m.Table == "" {
		m.Table = strings.TrimSuffix(m.Output, ".cmdline") + ".table"
	}
	for _, p := range []*string{&m.Output, &m.Table, &v.Firmware, &v.Kernel, &v.Initrd} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, in := range v.Inputs() {
		for _, out := range []string{m.Output, m.Table} {
			if in != "" && filepath.Clean(in) == filepath.Clean(out) {
				return fmt.Errorf("output %s would overwrite its input", out)
			}
		}
	}
	if filepath.Clean(m.Output) == filepath.Clean(m.Table) {
		return fmt.Errorf("the command line and the table are both %s", m.Output)
	}
	return nil
}

// checkTDXMemberFile checks a TDX member of a group file and resolves its
// paths against dir.
func checkTDXMemberFile(m *MemberFile, dir string) error {
	v := m.TDX
	switch {
	case m.Enclave != "" || m.Manifest != "" || m.Config != "" || m.Key != "" || m.Sig != "" || m.SNP != nil || m.Table != "":
		return errors.New("a TDX member has \"tdx\" and \"output\" only (a TD is not signed: no key)")
	case strings.TrimSpace(m.Output) == "":
		return errors.New("\"output\" (the table the TD is handed) is required")
	case (v.Firmware == "") == (v.MRTD == ""):
		return errors.New("give one of \"firmware\" (its MRTD is computed) and \"mrtd\"")
	case btoi(v.EventLog != "")+btoi(v.RTMR != nil)+btoi(v.Kernel != "") != 1:
		return errors.New("give one of \"event_log\" (a reference boot's CCEL data), \"rtmr\" (RTMR0 to RTMR2) and \"kernel\" (a direct boot)")
	case v.RTMR != nil && len(v.RTMR) != 3:
		return fmt.Errorf("\"rtmr\" has %d values, want RTMR0, RTMR1 and RTMR2", len(v.RTMR))
	case v.Kernel == "" && (v.Initrd != "" || v.Cmdline != "" || v.Memory != "" || v.ACPITables != ""):
		return errors.New("\"initrd\", \"cmdline\", \"memory\" and \"acpi_tables\" describe a direct boot: they need \"kernel\"")
	case v.Kernel != "" && (v.Firmware == "" || v.Memory == "" || v.ACPITables == ""):
		return errors.New("a direct boot needs \"firmware\" (for RTMR0), \"memory\" and \"acpi_tables\"")
	}
	if v.Memory != "" {
		if _, err := tdx.ParseMemory(v.Memory); err != nil {
			return err
		}
	}
	for _, h := range append([]string{v.MRTD}, v.RTMR...) {
		if b, err := hex.DecodeString(h); h != "" && (err != nil || len(b) != 48) {
			return fmt.Errorf("%q: want 96 hex digits (a SHA-384)", truncateString(h, 100))
		}
	}
	for _, p := range []*string{&m.Output, &v.Firmware, &v.EventLog, &v.Kernel, &v.Initrd, &v.ACPITables} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, in := range v.Inputs() {
		if in != "" && filepath.Clean(in) == filepath.Clean(m.Output) {
			return fmt.Errorf("output %s would overwrite its input", m.Output)
		}
	}
	return nil
}
