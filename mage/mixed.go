package mage

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
	"github.com/magesgx/mage/sgxsdk"
)

// GramineMember is a Gramine enclave to sign into a group: its stock
// .manifest.sgx, as gramine-sgx-sign expands it (defaults and trusted
// file hashes filled in), and its signing key.
type GramineMember struct {
	Name     string
	Manifest []byte
	Key      *rsa.PrivateKey
}

// SNPMember is an SEV-SNP VM to bind into a group: its entry (its launch
// cut at the hashes page, from snp.Cut of its firmware, vCPUs and direct
// boot, and the base command line the table's hash is appended to).
type SNPMember struct {
	Name  string
	Entry SNPEntry
}

// TDXMember is an Intel TDX trust domain to bind into a group.
type TDXMember struct {
	Name  string
	Entry TDXEntry
}

// AnyMember is one member of a group of SDK enclaves, Gramine enclaves
// and confidential VMs: exactly one of SDK, Gramine, SNP and TDX is set.
type AnyMember struct {
	SDK     *Member
	Gramine *GramineMember
	SNP     *SNPMember
	TDX     *TDXMember
}

// SignedAnyMember is one signed member of such a group.
type SignedAnyMember struct {
	Index     int
	Name      string
	Kind      Kind
	File      []byte // SDK: the signed enclave; Gramine: the final .manifest.sgx
	Sig       []byte // Gramine: the .sig file (the SIGSTRUCT); nil for SDK
	Sigstruct *sgx.Sigstruct
	MRENCLAVE sgx.Measurement
	Entry     Entry
	// An SNP member: the command line it must boot with (its base command
	// line and the table's hash) and its launch digest with it.
	Cmdline string
	Launch  [48]byte
	// A TDX member: its measurement once its boot extended RTMR3 with
	// the table's event (TableEvent of the table's SHA-256).
	TD TDMeasurement
}

// SignedAnyGroup is the result of SignAnyGroup.
type SignedAnyGroup struct {
	// Payload is the table: bare entries for a Gramine-only group, a
	// versioned table for a mixed one.
	Payload []byte
	// Section is the SDK members' .sgx_mage content (nil without them).
	Section []byte
	Members []SignedAnyMember
	// In a Merkle group (SignOptions.Merkle), as in SignedGroup: the
	// proofs of the members signed now, and in an updatable group the
	// lineage and every member's lineage proof (kept members first).
	Proofs        []*MembershipProof
	Lineage       *Lineage
	LineageProofs []*LineageProof
}

// Errors of Gramine group signing.
var (
	ErrGramineConstants = errors.New("mage: Gramine members must share their libpal, thread count and EDMM")
	ErrGramineManifest  = errors.New("mage: this Gramine manifest cannot carry a MAGE table")
)

// SignAnyGroup signs a group of Gramine enclaves, or of SDK and Gramine
// enclaves together (a group of SDK enclaves only is SignGroup's). Each
// Gramine manifest is re-emitted as flat dotted keys, padded to whole
// pages with comments, and ends with the table line
// loader.env.MAGE_TABLE = "<hex>"; its entry is the state after ECREATE
// and those pages. libpal is the libpal.so every Gramine member runs.
func SignAnyGroup(ctx context.Context, members []AnyMember, libpal *gramine.Libpal, opts SignOptions) (*SignedAnyGroup, error) {
	if len(members) == 0 {
		return nil, ErrEmptyGroup
	}
	if opts.Date.IsZero() {
		return nil, ErrMissingDate
	}
	if err := opts.checkLineage(); err != nil {
		return nil, err
	}
	date := sgx.DateFromTime(opts.Date)
	n := len(members)
	type gprep struct {
		m      *gramine.Manifest
		prefix []byte
		pages  uint64
	}
	gp := make([]*gprep, n)
	var sdkCount, gramCount, vmCount int
	var threads int
	var edmm bool
	for i, am := range members {
		name := memberName(i, nameOf(am))
		switch {
		case btoi(am.SDK != nil)+btoi(am.Gramine != nil)+btoi(am.SNP != nil)+btoi(am.TDX != nil) != 1:
			return nil, fmt.Errorf("%s: set exactly one of SDK, Gramine, SNP and TDX", name)
		case am.TDX != nil:
			vmCount++
			if opts.Merkle {
				return nil, fmt.Errorf("%s: %w: TDX members are in flat versioned tables only, not yet in Merkle tables", name, ErrTable)
			}
			continue
		case am.SNP != nil:
			vmCount++
			if opts.Merkle {
				return nil, fmt.Errorf("%s: %w: SNP members are in flat versioned tables only, not yet in Merkle tables", name, ErrTable)
			}
			if err := am.SNP.Entry.check(); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			continue
		case am.SDK != nil:
			sdkCount++
			if am.SDK.Key == nil {
				return nil, fmt.Errorf("%s: %w", name, ErrMissingKey)
			}
			continue
		}
		gramCount++
		if am.Gramine.Key == nil {
			return nil, fmt.Errorf("%s: %w", name, ErrMissingKey)
		}
		m, err := gramine.ParseManifest(am.Gramine.Manifest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := checkGramineManifest(m); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if gramCount == 1 {
			threads, edmm = m.MaxThreads, m.EDMM
		} else if m.MaxThreads != threads || m.EDMM != edmm {
			return nil, fmt.Errorf("%s: %w (%d threads, EDMM %t; the first Gramine member has %d, %t)", name, ErrGramineConstants, m.MaxThreads, m.EDMM, threads, edmm)
		}
		flat, err := gramine.FlattenManifest(m.Tree)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		prefix := gramine.PadToPages(flat)
		gp[i] = &gprep{m: m, prefix: prefix, pages: uint64(len(prefix) / PageSize)}
	}
	if gramCount == 0 && vmCount == 0 {
		return nil, fmt.Errorf("%w: no Gramine or VM member (sign SDK-only groups with SignGroup)", ErrEmptyGroup)
	}
	var libpalSHA [32]byte
	if gramCount > 0 {
		if libpal == nil {
			return nil, fmt.Errorf("%w: no libpal given", ErrGramineConstants)
		}
		libpalSHA = libpal.SHA256
	}
	// The payload's size is known before any entry: bare entries, or a
	// versioned header and entries.
	payloadLen := n * EntrySize
	switch {
	case opts.Merkle && opts.updatable():
		payloadLen = updatableTableSize
	case opts.Merkle:
		payloadLen = v2HeaderSize + 32
	case sdkCount > 0 || vmCount > 0:
		payloadLen = v2HeaderSize
		for _, am := range members {
			if am.SNP != nil {
				body := len(am.SNP.Entry.marshal())
				payloadLen += 8 + body + (-body & 7)
			} else if am.TDX != nil {
				payloadLen += 8 + tdxEntrySize
			} else {
				payloadLen += v2EntrySize
			}
		}
	}
	lineLen := uint64(len(GramineTablePrefix) + 2*payloadLen + 2)

	out := &SignedAnyGroup{Members: make([]SignedAnyMember, n)}
	images := make(map[int]*sgxImage)
	var sectionSize uint64
	for i, am := range members {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sm := &out.Members[i]
		sm.Index, sm.Name = i, nameOf(am)
		if am.SNP != nil {
			sm.Kind = KindSNP
			continue
		}
		if am.TDX != nil {
			sm.Kind = KindTDX
			continue
		}
		if am.SDK != nil {
			img, err := prepareSDK(ctx, am.SDK)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", memberName(i, sm.Name), err)
			}
			if sectionSize == 0 {
				sectionSize = img.size
			} else if img.size != sectionSize {
				return nil, fmt.Errorf("%w: %s has %d bytes, another member %d", ErrSectionSize, memberName(i, sm.Name), img.size, sectionSize)
			}
			images[i] = img
			sm.Kind, sm.Entry = KindSDK, img.entry
			continue
		}
		g := gp[i]
		l, err := gramine.NewLayout(g.m.EnclaveSize, threads, edmm, g.pages*PageSize+lineLen, libpal.Span)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", memberName(i, sm.Name), err)
		}
		h := measure.New()
		h.ECreate(4, l.Size)
		for p := uint64(0); p < g.pages; p++ {
			h.AddPage(l.Manifest+p*PageSize, SecinfoFlags, g.prefix[p*PageSize:][:PageSize])
		}
		sm.Kind, sm.Entry = KindGramine, Entry{State: h.State(), Offset: l.Manifest + g.pages*PageSize}
	}
	var payload []byte
	var mg *merkleGroup
	switch {
	case opts.Merkle:
		base := VersionedTable{SDKSectionSize: uint32(sectionSize), LibpalSHA256: libpalSHA, MaxThreads: uint32(threads), EDMM: edmm, Layout: gramineLayout(gramCount)}
		kinds := make([]Kind, n)
		entries := make([]Entry, n)
		for i, sm := range out.Members {
			kinds[i], entries[i] = sm.Kind, sm.Entry
		}
		var err error
		if mg, err = newMerkleGroup(opts, base, kinds, entries); err != nil {
			return nil, err
		}
		payload = mg.table.Marshal()
		if sectionSize > 0 {
			out.Section = make([]byte, sectionSize)
			copy(out.Section, payload)
		}
		out.Proofs, out.Lineage, out.LineageProofs = mg.proofs[mg.kept:], mg.lineage, mg.lineageProofs
		for i := range out.Members {
			out.Members[i].Index += mg.kept
		}
	case sdkCount == 0 && vmCount == 0:
		for _, sm := range out.Members {
			payload = sm.Entry.append(payload)
		}
	default:
		t := &VersionedTable{SDKSectionSize: uint32(sectionSize), LibpalSHA256: libpalSHA, MaxThreads: uint32(threads), EDMM: edmm, Layout: gramineLayout(gramCount)}
		for i, sm := range out.Members {
			t.Kinds, t.Entries = append(t.Kinds, sm.Kind), append(t.Entries, sm.Entry)
			if vmCount > 0 {
				var e *SNPEntry
				var te *TDXEntry
				if members[i].SNP != nil {
					e = &members[i].SNP.Entry
				}
				if members[i].TDX != nil {
					te = &members[i].TDX.Entry
				}
				t.SNP, t.TDX = append(t.SNP, e), append(t.TDX, te)
			}
		}
		payload = t.Marshal()
		if len(payload) != payloadLen {
			return nil, fmt.Errorf("%w: the table has %d bytes, %d were planned", ErrTable, len(payload), payloadLen)
		}
		if sdkCount == 0 {
			break
		}
		if uint64(len(payload)) > sectionSize {
			return nil, fmt.Errorf("%w: the table needs %d bytes, the SDK members' section has %d", ErrCapacity, len(payload), sectionSize)
		}
		out.Section = make([]byte, sectionSize)
		copy(out.Section, payload)
	}
	out.Payload = payload
	line := GramineTableText(payload)

	// Every member's MRENCLAVE, as any member derives it from the table;
	// then sign.
	var d *TableDeriver
	var err error
	switch {
	case out.Section != nil:
		d, err = NewSectionDeriver(out.Section, libpal)
	case gramCount == 0:
		var t *VersionedTable
		if t, err = ParseVersionedTable(payload); err == nil {
			d, err = newVersionedDeriver(t, payload, nil)
		}
	default:
		d, err = NewPayloadDeriver(payload, GramineConstants{Libpal: libpal, MaxThreads: threads, EDMM: edmm})
	}
	if err != nil {
		return nil, err
	}
	derive := d.Derive
	if mg != nil {
		derive = func(i int) (sgx.Measurement, error) {
			sm := out.Members[i]
			return d.finishMember(sm.Kind, uint64(sm.Index), sm.Entry)
		}
	}
	seen := map[sgx.Measurement]int{}
	seenVM := map[[48]byte]int{}
	seenTD := map[TDMeasurement]int{}
	for i := range out.Members {
		sm := &out.Members[i]
		name := memberName(i, sm.Name)
		if sm.Kind == KindSNP {
			if sm.Launch, err = d.DeriveLaunch(i); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if j, dup := seenVM[sm.Launch]; dup {
				return nil, fmt.Errorf("%w: %s and %s have the same launch digest %x", ErrDuplicate, memberName(j, out.Members[j].Name), name, sm.Launch)
			}
			seenVM[sm.Launch] = i
			sm.Cmdline = BoundCmdline(members[i].SNP.Entry.Cmdline, d.TableSHA256())
			continue
		}
		if sm.Kind == KindTDX {
			if sm.TD, err = d.DeriveTD(i); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if j, dup := seenTD[sm.TD]; dup {
				return nil, fmt.Errorf("%w: %s and %s have the same TD measurement", ErrDuplicate, memberName(j, out.Members[j].Name), name)
			}
			seenTD[sm.TD] = i
			continue
		}
		mr, err := derive(i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if j, dup := seen[mr]; dup {
			return nil, fmt.Errorf("%w: %s and %s have the same MRENCLAVE %s", ErrDuplicate, memberName(j, out.Members[j].Name), name, mr)
		}
		seen[mr] = i
		sm.MRENCLAVE = mr
		if sm.Kind == KindSDK {
			img := images[i]
			if err := img.img.SetMageSection(out.Section); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			css := img.img.Sigstruct(mr, date)
			if err := css.Sign(members[i].SDK.Key); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if sm.File, err = img.img.SignedFile(css); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			sm.Sigstruct = css
			continue
		}
		final := append(append([]byte(nil), gp[i].prefix...), line...)
		fm, err := gramine.ParseManifest(final)
		if err != nil {
			return nil, fmt.Errorf("%s: the re-emitted manifest: %w", name, err)
		}
		if err := sameMeaning(gp[i].m.Tree, fm.Tree); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		en, err := gramine.NewEnclave(fm, libpal)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if got := en.Measure(); got != mr {
			return nil, fmt.Errorf("%s: the final manifest measures %s, the table derives %s", name, got, mr)
		}
		css, err := en.Sign(members[i].Gramine.Key, opts.Date)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		sm.File, sm.Sig, sm.Sigstruct = final, css.Marshal(), css
	}
	return out, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// gramineLayout is the layout version a table records: GramineLayoutV15
// with Gramine members, else none.
func gramineLayout(gramCount int) uint8 {
	if gramCount > 0 {
		return GramineLayoutV15
	}
	return 0
}

func nameOf(am AnyMember) string {
	if am.SNP != nil {
		return am.SNP.Name
	}
	if am.TDX != nil {
		return am.TDX.Name
	}
	if am.SDK != nil {
		return am.SDK.Name
	}
	if am.Gramine != nil {
		return am.Gramine.Name
	}
	return ""
}

// checkGramineManifest refuses what would break the scheme: a manifest
// that sets the table already, takes its environment from a host file, or
// trusts a file that could hold a table (a manifest).
func checkGramineManifest(m *gramine.Manifest) error {
	loader, _ := m.Tree["loader"].(map[string]any)
	if env, ok := loader["env"].(map[string]any); ok {
		if _, ok := env["MAGE_TABLE"]; ok {
			return fmt.Errorf("%w: it sets loader.env.MAGE_TABLE already", ErrGramineManifest)
		}
	}
	if _, ok := loader["env_src_file"]; ok {
		return fmt.Errorf("%w: loader.env_src_file lets the host set the environment, MAGE_TABLE included", ErrGramineManifest)
	}
	sgxT, _ := m.Tree["sgx"].(map[string]any)
	tfs, _ := sgxT["trusted_files"].([]any)
	for _, tf := range tfs {
		uri := ""
		switch v := tf.(type) {
		case string:
			uri = v
		case map[string]any:
			uri, _ = v["uri"].(string)
		}
		if strings.HasSuffix(uri, ".manifest.sgx") || strings.HasSuffix(uri, ".manifest") {
			return fmt.Errorf("%w: trusted file %q could hold a table (a manifest is never a trusted file of a member)", ErrGramineManifest, uri)
		}
	}
	return nil
}

// sameMeaning checks that the final manifest means what the input meant,
// plus the table.
func sameMeaning(in, final map[string]any) error {
	loader, _ := final["loader"].(map[string]any)
	env, _ := loader["env"].(map[string]any)
	if _, ok := env["MAGE_TABLE"].(string); !ok {
		return errors.New("the final manifest does not set loader.env.MAGE_TABLE")
	}
	delete(env, "MAGE_TABLE")
	if len(env) == 0 {
		delete(loader, "env")
	}
	if !reflect.DeepEqual(in, final) {
		return errors.New("the re-emitted manifest does not mean what the input meant")
	}
	return nil
}

// sgxImage is an SDK member prepared and measured up to its section.
type sgxImage struct {
	img interface {
		SetMageSection([]byte) error
		Sigstruct(sgx.Measurement, uint32) *sgx.Sigstruct
		SignedFile(*sgx.Sigstruct) ([]byte, error)
	}
	size  uint64
	entry Entry
}

func prepareSDK(ctx context.Context, m *Member) (*sgxImage, error) {
	img, err := sgxsdk.Prepare(m.ELF, m.Config, m.Options)
	if err != nil {
		return nil, err
	}
	rva, size, ok := img.MageSection()
	if !ok {
		return nil, ErrNoSection
	}
	st, err := img.MeasurePrefixContext(ctx)
	if err != nil {
		return nil, err
	}
	return &sgxImage{img: img, size: size, entry: Entry{State: st, Offset: rva}}, nil
}
